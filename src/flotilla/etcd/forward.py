"""Requests only the leader can answer, sent on from a follower (etcd forwards them to its leader too).

Lease keep-alives and time-to-live queries need the primary lessor, which lives on the leader; a learner's
promotion needs the leader's view of the learner's log. etcd 3.4 forwards these over its peer HTTP API; a
Flotilla follower calls the leader's gRPC API on the client URLs the leader published.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import grpc

from flotilla.etcd import errors
from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc
from flotilla.raft import NO_LEADER

__all__ = ["FORWARDED", "LeaderForwarder", "grpc_target", "was_forwarded"]

log = logging.getLogger("flotilla.etcd")

FORWARDED = (("x-flotilla-forwarded", "1"),)  # a forwarded request is never forwarded again (no ping-pong)


def was_forwarded(context) -> bool:
    return any(key == "x-flotilla-forwarded" for key, _ in (context.invocation_metadata() or ()))


def grpc_target(url: str) -> str | None:
    """The gRPC target for a client URL, or None for a scheme this forwarder cannot dial (TLS)."""
    parts = urlsplit(url)
    if parts.scheme == "http":
        return parts.netloc
    if parts.scheme == "unix":
        return f"unix:{parts.netloc}{parts.path}"
    return None


class LeaderForwarder:
    """One gRPC channel per leader address, opened on first use and kept."""

    def __init__(self, server) -> None:
        self.server = server
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _target(self) -> str:
        server = self.server
        leader = server.leader_id()
        if leader == NO_LEADER:
            raise errors.no_leader()
        member = server.members.get(leader)
        targets = [t for t in (grpc_target(u) for u in (member.client_urls if member else ())) if t]
        if not targets:
            raise errors.no_leader()  # the leader has not published its client URLs yet
        return targets[0]

    def _channel(self) -> grpc.aio.Channel:
        target = self._target()
        channel = self._channels.get(target)
        if channel is None:
            channel = grpc.aio.insecure_channel(target)
            self._channels[target] = channel
        return channel

    def _timeout(self) -> float:
        return self.server.settings.timeout_s

    async def _call(self, method: str, request):
        stub_class = rpc_pb2_grpc.ClusterStub if method.startswith("Member") else rpc_pb2_grpc.LeaseStub
        stub = stub_class(self._channel())
        try:
            return await getattr(stub, method)(request, timeout=self._timeout(), metadata=FORWARDED)
        except grpc.aio.AioRpcError as error:
            raise errors.EtcdError(error.code(), error.details() or "") from None

    async def lease_keep_alive(self, lease_id: int) -> rpc_pb2.LeaseKeepAliveResponse:
        stub = rpc_pb2_grpc.LeaseStub(self._channel())
        call = stub.LeaseKeepAlive(timeout=self._timeout(), metadata=FORWARDED)
        try:
            await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
            response = await call.read()
            await call.done_writing()
        except grpc.aio.AioRpcError as error:
            raise errors.EtcdError(error.code(), error.details() or "") from None
        finally:
            call.cancel()
        if response is grpc.aio.EOF:
            raise errors.leader_changed()
        return response

    async def lease_time_to_live(self, request) -> rpc_pb2.LeaseTimeToLiveResponse:
        return await self._call("LeaseTimeToLive", request)

    async def lease_leases(self, request) -> rpc_pb2.LeaseLeasesResponse:
        return await self._call("LeaseLeases", request)

    async def member_promote(self, request) -> rpc_pb2.MemberPromoteResponse:
        return await self._call("MemberPromote", request)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

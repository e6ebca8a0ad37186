"""Endpoints and their gRPC channels, and the rule for when a failed call may move to the next one.

One channel per endpoint (not one balanced channel) so the client knows which member served a call and
can leave a member that is dead, partitioned or leaderless for the next one in the list. The current
endpoint is shared by all calls: once one call finds a member gone, the others stop trying it first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc

from flotilla.client import errors
from flotilla.client.types import TlsConfig
from flotilla.etcd.api import rpc_pb2_grpc

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.max_send_message_length", 2 * 1024 * 1024 + 512 * 1024),
    # A restarted member should be found again quickly, not after gRPC's default backoff of up to 2 min.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.min_reconnect_backoff_ms", 100),
]

# Statuses whose details show the request never reached a member's gRPC handler: safe to send again
# even when it is not idempotent.
_UNSENT_MARKERS = ("failed to connect", "connection refused", "name resolution", "dns resolution")
_NOT_APPLIED_DETAILS = ("etcdserver: no leader", "etcdserver: not capable")


class RetryElsewhere(Exception):
    """An attempt failed in a way that another member may not (a stream closed early, an answer that
    did not come in time); the message says what happened."""


@dataclass(frozen=True)
class Endpoint:
    url: str  # as the caller wrote it
    target: str  # gRPC dial target
    secure: bool


def parse_endpoint(url: str, tls: TlsConfig | None) -> Endpoint:
    """``http://h:p``, ``https://h:p``, ``h:p`` (TLS when a TlsConfig is given) or ``unix://path``."""
    text = url.strip()
    if text.startswith("https://"):
        return Endpoint(url, _strip_path(text[len("https://") :], url), True)
    if text.startswith("http://"):
        return Endpoint(url, _strip_path(text[len("http://") :], url), False)
    if text.startswith(("unix://", "unixs://")):
        scheme, _, path = text.partition("://")
        return Endpoint(url, f"unix:{path}", scheme == "unixs")
    if "://" in text:
        raise ValueError(f"endpoint {url!r}: unknown scheme; use http://, https://, unix:// or host:port")
    return Endpoint(url, _strip_path(text, url), tls is not None)


def _strip_path(hostport: str, url: str) -> str:
    host = hostport.split("/", 1)[0]
    if not host or ":" not in host:
        raise ValueError(f"endpoint {url!r}: expected host:port (e.g. http://127.0.0.1:12379)")
    return host


def _credentials(tls: TlsConfig | None) -> grpc.ChannelCredentials:
    def read(path: str) -> bytes | None:
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()

    tls = tls or TlsConfig()
    return grpc.ssl_channel_credentials(read(tls.ca_file), read(tls.key_file), read(tls.cert_file))


class Stubs:
    """The etcd v3 services over the channel to endpoint ``index``."""

    def __init__(self, index: int, url: str, channel: grpc.aio.Channel) -> None:
        self.index = index
        self.url = url
        self.channel = channel
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)
        self.watch = rpc_pb2_grpc.WatchStub(channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        self.auth = rpc_pb2_grpc.AuthStub(channel)


class EndpointPool:
    """Channels to the endpoints, created on first use (a grpc.aio channel belongs to the running loop)."""

    def __init__(self, urls: list[str], tls: TlsConfig | None) -> None:
        if not urls:
            raise ValueError("EtcdClient needs at least one endpoint (e.g. http://127.0.0.1:12379)")
        self.endpoints = [parse_endpoint(u, tls) for u in urls]
        self._tls = tls
        self._stubs: dict[int, Stubs] = {}
        self.current = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self.endpoints)

    def url(self, index: int) -> str:
        return self.endpoints[index].url

    def stubs(self, index: int) -> Stubs:
        if self.closed:
            raise errors.ClientError(
                "a call", self.url(index), "the client is closed", hint="use an open EtcdClient"
            )
        stubs = self._stubs.get(index)
        if stubs is None:
            stubs = Stubs(index, self.endpoints[index].url, self._dial(self.endpoints[index]))
            self._stubs[index] = stubs
        return stubs

    def _dial(self, endpoint: Endpoint) -> grpc.aio.Channel:
        options = list(_CHANNEL_OPTIONS)
        if self._tls and self._tls.server_name:
            options.append(("grpc.ssl_target_name_override", self._tls.server_name))
        if endpoint.secure:
            return grpc.aio.secure_channel(endpoint.target, _credentials(self._tls), options)
        return grpc.aio.insecure_channel(endpoint.target, options)

    def failed(self, index: int) -> int:
        """Record that ``index`` failed; returns the endpoint to try next."""
        following = (index + 1) % len(self.endpoints)
        if self.current == index:
            self.current = following
        return following

    async def close(self) -> None:
        self.closed = True
        stubs, self._stubs = self._stubs, {}
        for s in stubs.values():
            await s.channel.close()


def retryable(error: grpc.aio.AioRpcError, idempotent: bool) -> bool:
    """May the call go to another endpoint? Always when the request never reached a member or the member
    refused it before proposing it; for idempotent calls also when the member failed mid-call."""
    code = error.code()
    details = (error.details() or "").lower()
    if code is grpc.StatusCode.UNAVAILABLE:
        if idempotent or any(m in details for m in _UNSENT_MARKERS):
            return True
        return details in _NOT_APPLIED_DETAILS
    # A member that is not (or no longer) able to answer: 3.4 sends "not capable" and "no leader" as
    # UNAVAILABLE, but a member stopping while the call is in flight can also surface as CANCELLED.
    return idempotent and code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED)


async def stream_write(call, request, timeout_s: float) -> None:
    """Write to a stream within ``timeout_s``; a stream that already ended raises its final status as an
    AioRpcError (grpc.aio says only "RPC already finished"), so the caller can judge it like any other."""
    try:
        async with asyncio.timeout(max(timeout_s, 0.001)):
            await call.write(request)
    except asyncio.InvalidStateError:
        code = await call.code()
        details = await call.details()
        raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details) from None

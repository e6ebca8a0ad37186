"""``lease grant|revoke|timetolive|list|keep-alive`` (ctlv3/command/lease_command.go)."""

from __future__ import annotations

import sys
import threading

import grpc

from flotilla.etcd.api import rpc_pb2
from flotilla.etcdctl.v3.cli import Ctl
from flotilla.etcdctl.v3.client import RequestQueue, RPCFailed
from flotilla.etcdctl.v3.cmdline import Command, Flag, parse_int
from flotilla.etcdctl.v3.errors import EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, fail

LEASE_NOT_FOUND = "etcdserver: requested lease not found"


def commands() -> list[Command]:
    lease = Command("lease <subcommand>", "Lease related commands")
    lease.add(
        Command("grant <ttl>", "Creates leases", _grant),
        Command("revoke <leaseID>", "Revokes leases", _revoke),
        Command("timetolive <leaseID> [options]", "Get lease information", _time_to_live,
                flags=[Flag("keys", "bool", False, "Get keys attached to this lease")]),
        Command("list", "List all active leases", _list),
        Command("keep-alive [options] <leaseID>", "Keeps leases alive (renew)", _keep_alive,
                flags=[Flag("once", "bool", False,
                            "Resets the keep-alive time to its original value and exits immediately")]),
    )  # fmt: skip
    return [lease]


def lease_from_arg(arg: str) -> int:
    try:
        return parse_int(arg, 16)
    except ValueError as e:
        fail(EXIT_BAD_ARGS, f"bad lease ID arg ({e}), expecting ID in Hex")


def _grant(ctl: Ctl) -> None:
    if len(ctl.args) != 1:
        fail(EXIT_BAD_ARGS, "lease grant command needs TTL argument")
    try:
        ttl = parse_int(ctl.args[0])
    except ValueError as e:
        fail(EXIT_BAD_ARGS, f"bad TTL ({e})")
    client = ctl.client()
    request = rpc_pb2.LeaseGrantRequest(TTL=ttl)
    resp = client.call_or_exit(
        client.lease.LeaseGrant, request, ctl.command_timeout_s, what="failed to grant lease"
    )
    ctl.display.grant(resp)


def _revoke(ctl: Ctl) -> None:
    if len(ctl.args) != 1:
        fail(EXIT_BAD_ARGS, "lease revoke command needs 1 argument")
    lease_id = lease_from_arg(ctl.args[0])
    client = ctl.client()
    request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
    resp = client.call_or_exit(
        client.lease.LeaseRevoke, request, ctl.command_timeout_s, what="failed to revoke lease"
    )
    ctl.display.revoke(lease_id, resp)


def _time_to_live(ctl: Ctl) -> None:
    if len(ctl.args) != 1:
        fail(EXIT_BAD_ARGS, "lease timetolive command needs lease ID as argument")
    keys = ctl.flag("keys")
    lease_id = lease_from_arg(ctl.args[0])
    client = ctl.client()
    request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
    # context.TODO(): no deadline
    resp = client.call_or_exit(client.lease.LeaseTimeToLive, request, None, EXIT_BAD_CONNECTION)
    ctl.display.time_to_live(resp, keys)


def _list(ctl: Ctl) -> None:
    client = ctl.client()
    resp = client.call_or_exit(
        client.lease.LeaseLeases, rpc_pb2.LeaseLeasesRequest(), None, EXIT_BAD_CONNECTION
    )
    ctl.display.leases(resp)


class _KeepAliveStream:
    """One LeaseKeepAlive stream; ``renew()`` sends a request and waits for its answer."""

    def __init__(self, client, lease_id: int) -> None:
        self.lease_id = lease_id
        self.requests = RequestQueue()
        self.client = client
        self.responses = client.lease.LeaseKeepAlive(
            iter(self.requests), wait_for_ready=True, metadata=client.metadata or None
        )

    def renew(self):
        self.requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=self.lease_id))
        try:
            return next(self.responses)
        except grpc.RpcError as e:
            raise self.client.failure(e, log=False) from None
        except StopIteration:
            raise RPCFailed("rpc error: code = Canceled desc = context canceled") from None

    def close(self) -> None:
        self.requests.end()
        self.responses.cancel()


def _keep_alive(ctl: Ctl) -> None:
    if len(ctl.args) != 1:
        fail(EXIT_BAD_ARGS, "lease keep-alive command needs lease ID as argument")
    lease_id = lease_from_arg(ctl.args[0])
    client = ctl.client()
    stream = _KeepAliveStream(client, lease_id)
    try:
        if ctl.flag("once"):
            _once(ctl, stream)
            return
        _forever(ctl, stream)
    finally:
        stream.close()


def _once(ctl: Ctl, stream: _KeepAliveStream) -> None:
    try:
        resp = stream.renew()
    except RPCFailed as e:
        fail(EXIT_BAD_CONNECTION, str(e))
    if resp.TTL <= 0:
        fail(EXIT_BAD_CONNECTION, LEASE_NOT_FOUND)
    ctl.display.keep_alive(resp)


def _forever(ctl: Ctl, stream: _KeepAliveStream) -> None:
    # clientv3 renews a third of the TTL after each answer, until the lease is gone.
    wake = threading.Event()
    while True:
        try:
            resp = stream.renew()
        except RPCFailed:
            break
        if resp.TTL <= 0:
            break
        ctl.display.keep_alive(resp)
        sys.stdout.flush()
        wake.wait(max(resp.TTL / 3.0, 0.5))
    if ctl.display.name == "simple":
        print(f"lease {lease_id_hex(stream.lease_id)} expired or revoked.")


def lease_id_hex(lease_id: int) -> str:
    return f"{lease_id & 0xFFFFFFFFFFFFFFFF:016x}"

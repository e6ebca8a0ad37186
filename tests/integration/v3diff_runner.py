"""A differential runner for the v3 API: the same requests go to a Flotilla member and to a real etcd 3.4
member, and every response must be the same once what legitimately differs is masked.

Masked: cluster_id and member_id in headers (they derive from ports), lease IDs the server chose (each
side's are replaced by ``lease#N`` in grant order) and the remaining TTL of a lease (clocks differ by up
to a second; the masked value says whether it lies within two seconds of the granted TTL). NOT masked:
revisions and raft terms (both members start at revision 1 and term 2, so equal histories give equal
numbers), errors (gRPC code and message), the order of everything.

A request is either a message (sent as is to both sides) or a function of the ``Side`` that builds it
(to use that side's lease IDs). A mismatch marks the ``Differ`` as diverged so a fixture can start a
fresh pair for the next test.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import grpc
from google.protobuf import json_format

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc

CALL_TIMEOUT_S = 10.0
_LEASE_FIELDS = {"lease", "ID"}


@dataclass
class Side:
    """One member as seen by the runner: its stubs and the lease IDs it chose, in grant order."""

    kind: str
    member: object
    channel: grpc.Channel
    leases: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(self.channel)
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)

    def lease_id(self, n: int) -> int:
        """The ID of the n-th lease this side chose (negative n counts from the last)."""
        return self.leases[n]

    def mask(self, message) -> dict:
        d = json_format.MessageToDict(message, preserving_proto_field_name=True)
        return _mask_value(d, self)


def _mask_value(value, side: Side):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("cluster_id", "member_id") and not isinstance(item, (dict, list)):
                out[key] = "<id>"
            elif key in _LEASE_FIELDS and isinstance(item, str) and item.lstrip("-").isdigit():
                out[key] = _mask_lease(int(item), side)
            else:
                out[key] = _mask_value(item, side)
        return out
    if isinstance(value, list):
        return [_mask_value(item, side) for item in value]
    return value


def _mask_lease(lease_id: int, side: Side) -> str | int:
    if lease_id in side.leases:
        return f"lease#{side.leases.index(lease_id)}"
    return lease_id


@dataclass(frozen=True)
class Outcome:
    """A masked response, or the error a call ended with."""

    response: object = None
    code: str | None = None
    details: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is None


class Mismatch(AssertionError):
    pass


class Differ:
    """Runs requests on every side and compares the outcomes; counts the comparisons it made."""

    def __init__(self, members: list) -> None:
        self.sides = [Side(m.kind, m, grpc.insecure_channel(m.address)) for m in members]
        self.diverged = False
        self.cases = 0

    def close(self) -> None:
        for side in self.sides:
            side.channel.close()

    # --- comparing ------------------------------------------------------------------------------
    def check(self, what: str, outcomes: list, *, expect_ok: bool | None = None) -> object:
        self.cases += 1
        first = outcomes[0]
        for side, outcome in zip(self.sides[1:], outcomes[1:], strict=True):
            if outcome != first:
                self.diverged = True
                raise Mismatch(
                    f"{what}: responses differ\n  {self.sides[0].kind}: {first}\n  {side.kind}: {outcome}"
                    + self._log_tails()
                )
        if expect_ok is not None and isinstance(first, Outcome) and first.ok != expect_ok:
            raise AssertionError(f"{what}: expected {'success' if expect_ok else 'an error'}, got {first}")
        return first

    def _log_tails(self) -> str:
        tails = []
        for side in self.sides:
            exited = side.member.proc.poll()
            lines = "\n    ".join(side.member.log[-8:])
            tails.append(f"\n  {side.kind} log (exit code {exited}):\n    {lines}")
        return "".join(tails)

    def call(self, service: str, method: str, request, *, expect_ok: bool | None = True, mask=None):
        """Send ``request`` (a message or a function of the side) to ``service.method`` on each side;
        returns the common masked outcome. ``mask`` post-processes each masked response dict."""
        outcomes = []
        for side in self.sides:
            message = request(side) if callable(request) else request
            try:
                response = getattr(getattr(side, service), method)(message, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as error:
                outcomes.append(Outcome(code=error.code().name, details=error.details()))
                continue
            if method == "LeaseGrant" and not message.ID:
                side.leases.append(response.ID)
            masked = side.mask(response)
            if mask is not None:
                masked = mask(masked, side, response)
            outcomes.append(Outcome(response=masked))
        return self.check(f"{service}.{method}({_short(request)})", outcomes, expect_ok=expect_ok)

    # --- shorthands -----------------------------------------------------------------------------
    def range(self, key: bytes, range_end: bytes = b"", *, expect_ok: bool | None = True, **kw):
        return self.call("kv", "Range", rpc_pb2.RangeRequest(key=key, range_end=range_end, **kw),
                         expect_ok=expect_ok)  # fmt: skip

    def put(self, key: bytes, value: bytes = b"", *, expect_ok: bool | None = True, **kw):
        return self.call("kv", "Put", _put_request(key, value, kw), expect_ok=expect_ok)

    def delete(self, key: bytes, range_end: bytes = b"", *, expect_ok: bool | None = True, **kw):
        request = rpc_pb2.DeleteRangeRequest(key=key, range_end=range_end, **kw)
        return self.call("kv", "DeleteRange", request, expect_ok=expect_ok)

    def txn(self, request, *, expect_ok: bool | None = True):
        return self.call("kv", "Txn", request, expect_ok=expect_ok)

    def revision(self) -> int:
        """The current revision (equal on every side, else a mismatch)."""
        out = self.range(b"\0", serializable=True, count_only=True)
        return int(out.response["header"]["revision"])

    def gateway(self, path: str, body, *, expect_status: int | None = 200):
        """POST ``body`` (a dict, sent as JSON, or raw bytes) to the JSON gateway's ``path`` on each side;
        compares status and masked JSON."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        outcomes = []
        for side in self.sides:
            request = urllib.request.Request(side.member.endpoint + path, data=data, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as response:
                    status, text = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, text = error.code, error.read()
            try:
                payload = _mask_value(json.loads(text), side)
            except ValueError:
                payload = text
            outcomes.append((status, payload))
        status, payload = self.check(f"POST {path} {data[:200]!r}", outcomes)
        if expect_status is not None and status != expect_status:
            raise AssertionError(f"POST {path}: expected {expect_status}, both gave {status} {payload}")
        return payload

    def watch(self) -> WatchPair:
        return WatchPair(self)


def _put_request(key: bytes, value: bytes, kw: dict):
    lease = kw.pop("lease", 0)
    if callable(lease):
        return lambda side: rpc_pb2.PutRequest(key=key, value=value, lease=lease(side), **kw)
    return rpc_pb2.PutRequest(key=key, value=value, lease=lease, **kw)


def _short(request) -> str:
    if callable(request):
        return "<per side>"
    text = json_format.MessageToJson(request, indent=None, preserving_proto_field_name=True)
    return text if len(text) < 300 else text[:300] + "..."


class WatchStream:
    """One side's Watch stream: requests go in through a queue, responses come out through another."""

    _END = object()

    def __init__(self, side: Side) -> None:
        self.side = side
        self.requests: queue.Queue = queue.Queue()
        self.responses: queue.Queue = queue.Queue()
        self.call = side.watch.Watch(iter(self.requests.get, self._END))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.responses.put(response)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.responses.put(error)

    def take(self, count: int, deadline: float, settle_s: float) -> list:
        got = []
        while len(got) < count:
            try:
                got.append(self.responses.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        if settle_s:
            settle_deadline = time.monotonic() + settle_s
            while True:
                try:
                    got.append(self.responses.get(timeout=max(0.0, settle_deadline - time.monotonic())))
                except queue.Empty:
                    break
        return got

    def close(self) -> None:
        self.requests.put(self._END)
        self.call.cancel()
        self.thread.join(5)


class WatchPair:
    """The same Watch stream opened on every side."""

    def __init__(self, differ: Differ) -> None:
        self.differ = differ
        self.streams = [WatchStream(side) for side in differ.sides]

    def send(self, request) -> None:
        for stream in self.streams:
            message = request(stream.side) if callable(request) else request
            if isinstance(message, rpc_pb2.WatchCreateRequest):
                message = rpc_pb2.WatchRequest(create_request=message)
            elif isinstance(message, rpc_pb2.WatchCancelRequest):
                message = rpc_pb2.WatchRequest(cancel_request=message)
            elif isinstance(message, rpc_pb2.WatchProgressRequest):
                message = rpc_pb2.WatchRequest(progress_request=message)
            stream.requests.put(message)

    def create(self, key: bytes, range_end: bytes = b"", **kw) -> None:
        self.send(rpc_pb2.WatchCreateRequest(key=key, range_end=range_end, **kw))

    def cancel(self, watch_id: int) -> None:
        self.send(rpc_pb2.WatchCancelRequest(watch_id=watch_id))

    def progress(self) -> None:
        self.send(rpc_pb2.WatchProgressRequest())

    def expect(self, count: int, *, what: str = "watch", timeout_s: float = 5.0, settle_s: float = 0.0):
        """Collect ``count`` responses from each stream (plus any arriving within ``settle_s``) and
        compare the sequences; returns the common masked list."""
        deadline = time.monotonic() + timeout_s
        outcomes = []
        for stream in self.streams:
            got = stream.take(count, deadline, settle_s)
            # etcd hands one revision's events to the watchers of a stream in its map's (random) order:
            # compare each watch's own sequence, not the interleaving.
            got.sort(key=lambda g: -2 if isinstance(g, grpc.RpcError) else g.watch_id)
            outcomes.append([
                Outcome(code=g.code().name, details=g.details()) if isinstance(g, grpc.RpcError)
                else stream.side.mask(g)
                for g in got
            ])  # fmt: skip
        common = self.differ.check(f"{what} ({count} responses)", outcomes)
        if len(common) != count:
            raise AssertionError(f"{what}: expected {count} responses, both sides sent {common}")
        return common

    def close(self, settle_s: float = 0.1) -> None:
        """Check that neither side sent anything more, then end the streams."""
        try:
            self.expect(0, what="no more watch responses", timeout_s=0, settle_s=settle_s)
        finally:
            for stream in self.streams:
                stream.close()

    def __enter__(self) -> WatchPair:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:
            for stream in self.streams:
                stream.close()

"""The v3 gRPC services (KV, Lease, Cluster, Maintenance) over an ``EtcdServer``; Watch is in
``watch_service``. The same servicer objects serve gRPC and the JSON gateway.

Request validation happens here, before a request is proposed, as etcd's ``v3rpc`` does; the semantics of
applying it are in ``flotilla.etcd.apply``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import logging
import tempfile
import zlib
from pathlib import Path

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError

from flotilla import __version__
from flotilla.etcd import errors
from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc
from flotilla.etcd.forward import LeaderForwarder, was_forwarded
from flotilla.etcd.server import EtcdServer
from flotilla.mvcc.errors import CompactedError, FutureRevisionError, LeaseNotFoundError

__all__ = [
    "SERVER_VERSION",
    "ClusterService",
    "KVService",
    "LeaseService",
    "MaintenanceService",
    "add_servicers_to_server",
]

log = logging.getLogger("flotilla.etcd")

SERVER_VERSION = "3.4.0"  # the etcd API level served; clients pick their paths and features by it
CLUSTER_VERSION = "3.4.0"
MAX_LEASE_TTL_S = 9_000_000_000  # etcd's MaxLeaseTTL
SNAPSHOT_CHUNK_BYTES = 32 * 1024


def _etcd_errors(method):
    """Turn an ``EtcdError`` into the gRPC status etcd sends (the gateway's context does the same)."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except errors.EtcdError as error:
            await context.abort(error.code, error.message)

    return wrapper


def _check_key(key: bytes) -> None:
    if not key:
        raise errors.empty_key()


def _check_put(r: rpc_pb2.PutRequest) -> None:
    _check_key(r.key)
    if r.ignore_value and r.value:
        raise errors.value_provided()
    if r.ignore_lease and r.lease:
        raise errors.lease_provided()


def _check_txn(r: rpc_pb2.TxnRequest, max_ops: int) -> None:
    if len(r.compare) > max_ops or len(r.success) > max_ops or len(r.failure) > max_ops:
        raise errors.too_many_ops()
    for compare in r.compare:
        _check_key(compare.key)
    for ops in (r.success, r.failure):
        for op in ops:
            kind = op.WhichOneof("request")
            if kind == "request_range":
                _check_key(op.request_range.key)
            elif kind == "request_put":
                _check_put(op.request_put)
            elif kind == "request_delete_range":
                _check_key(op.request_delete_range.key)
            elif kind == "request_txn":
                _check_txn(op.request_txn, max_ops)
        _check_intervals(ops)


def _write_intervals(ops) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    """The keys put and the ranges deleted by a branch, nested txns included (both of their branches,
    as etcd checks them)."""
    puts: set[bytes] = set()
    deletes: list[tuple[bytes, bytes]] = []
    for op in ops:
        kind = op.WhichOneof("request")
        if kind == "request_put":
            if op.request_put.key in puts:
                raise errors.duplicate_key()
            puts.add(op.request_put.key)
        elif kind == "request_delete_range":
            deletes.append((op.request_delete_range.key, op.request_delete_range.range_end))
        elif kind == "request_txn":
            branch_puts = []
            for branch in (op.request_txn.success, op.request_txn.failure):
                nested_puts, nested_deletes = _write_intervals(branch)
                if puts & nested_puts:
                    raise errors.duplicate_key()
                deletes.extend(nested_deletes)
                branch_puts.append(nested_puts)
            puts |= branch_puts[0] | branch_puts[1]
    return puts, deletes


def _check_intervals(ops) -> None:
    """etcd rejects a txn that puts a key twice or puts a key that a delete in it also covers."""
    puts, deletes = _write_intervals(ops)
    for key, end in deletes:
        for put_key in puts:
            if (not end and put_key == key) or (end == b"\0" and put_key >= key) or (key <= put_key < end):
                raise errors.duplicate_key()


class KVService(rpc_pb2_grpc.KVServicer):
    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    @_etcd_errors
    async def Range(self, request, context):
        _check_key(request.key)
        return await self.server.range(request)

    @_etcd_errors
    async def Put(self, request, context):
        _check_put(request)
        return await self.server.propose("put", request, cost=request.ByteSize())

    @_etcd_errors
    async def DeleteRange(self, request, context):
        _check_key(request.key)
        return await self.server.propose("delete_range", request)

    @_etcd_errors
    async def Txn(self, request, context):
        _check_txn(request, self.server.settings.max_txn_ops)
        return await self.server.txn(request)

    @_etcd_errors
    async def Compact(self, request, context):
        return await self.server.propose("compaction", request)


class LeaseService(rpc_pb2_grpc.LeaseServicer):
    def __init__(self, server: EtcdServer) -> None:
        self.server = server
        self.forwarder = LeaderForwarder(server)

    def _forward(self, context) -> bool:
        """A follower sends lease reads and renewals to the leader, the primary lessor."""
        return not self.server.is_leader() and not was_forwarded(context)

    @_etcd_errors
    async def LeaseGrant(self, request, context):
        if request.TTL > MAX_LEASE_TTL_S:
            raise errors.lease_ttl_too_large()
        if request.ID == 0:
            grant = rpc_pb2.LeaseGrantRequest()
            grant.CopyFrom(request)
            # etcd picks a positive int63 from its request-ID generator.
            grant.ID = self.server._ids.next() & ((1 << 63) - 1)
            request = grant
        return await self.server.propose("lease_grant", request, cost=request.ByteSize())

    @_etcd_errors
    async def LeaseRevoke(self, request, context):
        return await self.server.propose("lease_revoke", request)

    async def LeaseKeepAlive(self, request_iterator, context):
        server = self.server
        async for request in request_iterator:
            try:
                if self._forward(context):
                    yield await self.forwarder.lease_keep_alive(request.ID)
                    continue
                ttl = server.lease_renew(request.ID)
            except errors.EtcdError as error:
                await context.abort(error.code, error.message)
            except LeaseNotFoundError:
                ttl = 0  # etcd answers a keep-alive for an unknown lease with TTL 0
            yield rpc_pb2.LeaseKeepAliveResponse(
                header=server.header(server.store.revision), ID=request.ID, TTL=ttl
            )

    @_etcd_errors
    async def LeaseTimeToLive(self, request, context):
        server = self.server
        if self._forward(context):
            return await self.forwarder.lease_time_to_live(request)
        await server.read_barrier()
        lease = server.lessor.lookup(request.ID)
        header = server.header(server.store.revision)
        if lease is None:
            return rpc_pb2.LeaseTimeToLiveResponse(header=header, ID=request.ID, TTL=-1)
        resp = rpc_pb2.LeaseTimeToLiveResponse(
            header=header, ID=request.ID, TTL=server.lease_remaining(request.ID), grantedTTL=lease.ttl_s
        )
        if request.keys:
            resp.keys.extend(sorted(lease.keys))
        return resp

    @_etcd_errors
    async def LeaseLeases(self, request, context):
        server = self.server
        if self._forward(context):
            return await self.forwarder.lease_leases(request)
        await server.read_barrier()
        resp = rpc_pb2.LeaseLeasesResponse(header=server.header(server.store.revision))
        for lease in server.lessor.leases():
            resp.leases.add(ID=lease.id)
        return resp


def _member_pb(member) -> rpc_pb2.Member:
    return rpc_pb2.Member(
        ID=member.id,
        name=member.name,
        peerURLs=list(member.peer_urls),
        clientURLs=list(member.client_urls),
        isLearner=member.is_learner,
    )


class ClusterService(rpc_pb2_grpc.ClusterServicer):
    def __init__(self, server: EtcdServer) -> None:
        self.server = server
        self.forwarder = LeaderForwarder(server)

    def _header(self) -> rpc_pb2.ResponseHeader:
        return self.server.header(0)  # etcd: no revision in membership responses

    @_etcd_errors
    async def MemberList(self, request, context):
        server = self.server
        resp = rpc_pb2.MemberListResponse(header=self._header())
        resp.members.extend(_member_pb(m) for m in sorted(server.members.values(), key=lambda m: m.id))
        return resp

    @_etcd_errors
    async def MemberAdd(self, request, context):
        member, members = await self.server.add_member(list(request.peerURLs), request.isLearner)
        resp = rpc_pb2.MemberAddResponse(header=self._header(), member=_member_pb(member))
        resp.members.extend(_member_pb(m) for m in members)
        return resp

    @_etcd_errors
    async def MemberRemove(self, request, context):
        members = await self.server.remove_member(request.ID)
        resp = rpc_pb2.MemberRemoveResponse(header=self._header())
        resp.members.extend(_member_pb(m) for m in members)
        return resp

    @_etcd_errors
    async def MemberUpdate(self, request, context):
        members = await self.server.update_member(request.ID, list(request.peerURLs))
        resp = rpc_pb2.MemberUpdateResponse(header=self._header())
        resp.members.extend(_member_pb(m) for m in members)
        return resp

    @_etcd_errors
    async def MemberPromote(self, request, context):
        if not self.server.is_leader() and not was_forwarded(context):
            return await self.forwarder.member_promote(request)
        members = await self.server.promote_member(request.ID)
        resp = rpc_pb2.MemberPromoteResponse(header=self._header())
        resp.members.extend(_member_pb(m) for m in members)
        return resp


class MaintenanceService(rpc_pb2_grpc.MaintenanceServicer):
    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    @_etcd_errors
    async def Alarm(self, request, context):
        # etcd 3.4 replicates every alarm request, a GET too (etcdctl's list and disarm): one raft entry
        # each, so the raft index of both servers stays equal for equal histories.
        return await self.server.propose("alarm", request)

    @_etcd_errors
    async def Status(self, request, context):
        server = self.server
        resp = rpc_pb2.StatusResponse(
            header=server.header(server.store.revision),
            version=SERVER_VERSION,
            dbSize=server.db_size,
            leader=server.leader_id(),
            raftIndex=server.storage.memory.hard_state.commit,
            raftTerm=server.raft.term,
            raftAppliedIndex=server.applied_index,
            dbSizeInUse=server.db_size_in_use,
            isLearner=server.members.get(server.member_id) is not None
            and server.members[server.member_id].is_learner,
        )
        for member_id, alarm in sorted(server.alarms):
            resp.errors.append(f"memberID:{member_id} alarm:{rpc_pb2.AlarmType.Name(alarm)} ")
        return resp

    @_etcd_errors
    async def Defragment(self, request, context):
        await self.server.defragment()
        return rpc_pb2.DefragmentResponse(header=self.server.header(self.server.store.revision))

    @_etcd_errors
    async def Hash(self, request, context):
        server = self.server
        value = await asyncio.to_thread(_backend_hash, server.backend)
        return rpc_pb2.HashResponse(header=server.header(server.store.revision), hash=value)

    @_etcd_errors
    async def HashKV(self, request, context):
        server = self.server
        try:
            value, compact_revision = server.hash_kv(request.revision)
        except CompactedError:
            raise errors.compacted() from None
        except FutureRevisionError:
            raise errors.future_revision() from None
        return rpc_pb2.HashKVResponse(
            header=server.header(server.store.revision),
            hash=value,
            compact_revision=compact_revision or -1,  # etcd's "never compacted"
        )

    async def Snapshot(self, request, context):
        """Stream a consistent copy of the backend, then its sha256 as etcd does (``etcdctl snapshot
        restore`` checks it)."""
        server = self.server
        with tempfile.TemporaryDirectory(dir=server.paths.snap) as tmp:
            target = Path(tmp) / "snapshot.db"
            await server.copy_backend(target)
            size = target.stat().st_size
            digest = hashlib.sha256()
            header = server.header(server.store.revision)
            with open(target, "rb") as f:
                sent = 0
                while True:
                    chunk = await asyncio.to_thread(f.read, SNAPSHOT_CHUNK_BYTES)
                    if not chunk:
                        break
                    digest.update(chunk)
                    sent += len(chunk)
                    yield rpc_pb2.SnapshotResponse(
                        header=header, remaining_bytes=size - sent + 32, blob=chunk
                    )
            yield rpc_pb2.SnapshotResponse(header=header, remaining_bytes=0, blob=digest.digest())

    @_etcd_errors
    async def MoveLeader(self, request, context):
        server = self.server
        # etcd 3.4 answers after the transferee leads (at once when the leader is the target) with a
        # response that carries no header.
        await server.move_leader(request.targetID)
        return rpc_pb2.MoveLeaderResponse()


# --- registration -----------------------------------------------------------------------------------


class _Undecodable:
    """What the deserializer hands a method for bytes that are not its request message: the status the
    call ends with."""

    __slots__ = ("code", "details", "stream_details")

    def __init__(self, code: grpc.StatusCode, details: str, stream_details: str) -> None:
        self.code = code
        self.details = details
        self.stream_details = stream_details


def add_servicers_to_server(
    servicers: dict[str, object], server: grpc.aio.Server, *, max_message_bytes: int | None = None
) -> None:
    """Register ``servicers`` ("KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth": servicer) on
    ``server`` as the generated ``add_*Servicer_to_server`` do, with grpc-go's answers to bad calls:

    - request bytes that do not parse: Internal, "grpc: error unmarshalling request: <why>" (for a stream,
      the stream ends so when the bad message arrives);
    - a method or service not served: Unimplemented, "unknown method M for service S" / "unknown service S";
    - with ``max_message_bytes`` (etcd: --max-request-bytes + 512 KiB), a bigger request: ResourceExhausted,
      "grpc: received message larger than max (N vs. M)". That takes a server whose own receive limit is
      higher (grpc core words its refusal differently).
    """
    from flotilla.etcd.api import rpc_pb2 as api

    served = set()
    for name, servicer in servicers.items():
        service = api.DESCRIPTOR.services_by_name[name]
        handlers = {
            m.name: _method_handler(m, getattr(servicer, m.name), max_message_bytes) for m in service.methods
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
        server.add_registered_method_handlers(service.full_name, handlers)
        served.add(service.full_name)
    server.add_generic_rpc_handlers((_Unknown(frozenset(served)),))


def _method_handler(method_descriptor, behaviour, max_message_bytes: int | None) -> grpc.RpcMethodHandler:
    request_class = message_factory.GetMessageClass(method_descriptor.input_type)
    response_class = message_factory.GetMessageClass(method_descriptor.output_type)
    deserialize = _tolerant_parser(request_class, max_message_bytes)
    serialize = response_class.SerializeToString
    streaming_in = method_descriptor.client_streaming
    streaming_out = method_descriptor.server_streaming
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[streaming_in, streaming_out]
    behaviour = _checked_stream_in(behaviour) if streaming_in else _checked_unary_in(behaviour)
    return make(behaviour, request_deserializer=deserialize, response_serializer=serialize)


def _tolerant_parser(request_class, max_message_bytes: int | None):
    def deserialize(data: bytes):
        if max_message_bytes is not None and len(data) > max_message_bytes:
            details = f"grpc: received message larger than max ({len(data)} vs. {max_message_bytes})"
            return _Undecodable(grpc.StatusCode.RESOURCE_EXHAUSTED, details, details)
        try:
            return request_class.FromString(data)
        except DecodeError as error:
            why = _wire_error(data, request_class.DESCRIPTOR) or str(error)
            # grpc-go words it differently for the request of a unary call and a message of a stream.
            return _Undecodable(
                grpc.StatusCode.INTERNAL,
                f"grpc: error unmarshalling request: {why}",
                f"grpc: failed to unmarshal the received message {why}",
            )

    return deserialize


async def _abort_undecodable(context, request: _Undecodable):
    await context.abort(request.code, request.details)


def _checked_unary_in(behaviour):
    if inspect.isasyncgenfunction(behaviour):

        async def unary_stream(request, context):
            if isinstance(request, _Undecodable):
                await _abort_undecodable(context, request)
            async for response in behaviour(request, context):
                yield response

        return unary_stream

    async def unary(request, context):
        if isinstance(request, _Undecodable):
            await _abort_undecodable(context, request)
        return await behaviour(request, context)

    return unary


class _BrokenStream(Exception):
    """Ends the servicer's reading of a request stream that brought an undecodable message."""


class _CheckedRequests:
    """A request stream that stops at the first undecodable message and keeps it. The call is aborted
    from the handler itself once the servicer has returned (servicers may read requests in a task of their
    own, where an abort would not end the call)."""

    def __init__(self, requests) -> None:
        self._requests = requests
        self.bad: _Undecodable | None = None

    async def __aiter__(self):
        async for request in self._requests:
            if isinstance(request, _Undecodable):
                self.bad = request
                raise _BrokenStream
            yield request

    async def abort_if_broken(self, context) -> None:
        if self.bad is not None:
            await context.abort(self.bad.code, self.bad.stream_details)


def _checked_stream_in(behaviour):
    if inspect.isasyncgenfunction(behaviour):

        async def stream_stream(requests, context):
            checked = _CheckedRequests(requests)
            with contextlib.suppress(_BrokenStream):
                async for response in behaviour(checked, context):
                    yield response
            await checked.abort_if_broken(context)

        return stream_stream

    async def stream_in(requests, context):
        checked = _CheckedRequests(requests)
        result = None
        with contextlib.suppress(_BrokenStream):
            result = await behaviour(checked, context)
        await checked.abort_if_broken(context)
        return result

    return stream_in


class _Unknown(grpc.GenericRpcHandler):
    """Answers every call no service took, with grpc-go's words."""

    def __init__(self, served: frozenset[str]) -> None:
        self._served = served

    def service(self, handler_call_details):
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        if service in self._served:
            details = f"unknown method {method} for service {service}"
        else:
            details = f"unknown service {service}"

        async def unimplemented(request, context):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, details)

        return grpc.unary_unary_rpc_method_handler(unimplemented)


# gogoproto's Unmarshal (what etcd runs) reports the first problem it meets; Python's parser only says that
# there is one. This walk finds the same first problem, in the same words, for the error text.
_WIRE_TYPES = {"varint": 0, "fixed64": 1, "bytes": 2, "fixed32": 5}


def _wire_error(data: bytes, descriptor) -> str | None:
    try:
        _walk(data, descriptor)
    except _WireError as error:
        return str(error)
    return None


class _WireError(Exception):
    pass


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if shift >= 64:
            raise _WireError("proto: integer overflow")
        if i >= len(data):
            raise _WireError("unexpected EOF")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, i
        shift += 7


def _expected_wire_type(field) -> int:
    t = field.type
    if t in (field.TYPE_STRING, field.TYPE_BYTES, field.TYPE_MESSAGE):
        return 2
    if t in (field.TYPE_DOUBLE, field.TYPE_FIXED64, field.TYPE_SFIXED64):
        return 1
    if t in (field.TYPE_FLOAT, field.TYPE_FIXED32, field.TYPE_SFIXED32):
        return 5
    return 0


def _go_name(field) -> str:
    return "".join(part[:1].upper() + part[1:] for part in field.name.split("_"))


def _walk(data: bytes, descriptor) -> None:
    i, end = 0, len(data)
    while i < end:
        tag, i = _varint(data, i)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 4:
            raise _WireError(f"proto: {descriptor.name}: wiretype end group for non-group")
        if number <= 0:
            raise _WireError(f"proto: {descriptor.name}: illegal tag {number} (wire type {wire_type})")
        field = descriptor.fields_by_number.get(number)
        if field is not None:
            expected = _expected_wire_type(field)
            packed = field.is_repeated and expected != 2 and wire_type == 2
            if wire_type != expected and not packed:
                raise _WireError(f"proto: wrong wireType = {wire_type} for field {_go_name(field)}")
        i = _skip(data, i, wire_type, field)


def _skip(data: bytes, i: int, wire_type: int, field) -> int:
    if wire_type == 0:
        return _varint(data, i)[1]
    if wire_type in (1, 5):
        i += 8 if wire_type == 1 else 4
    elif wire_type == 2:
        length, i = _varint(data, i)
        if length >= 1 << 63:
            raise _WireError("proto: negative length found during unmarshaling")
        if i + length > len(data):
            raise _WireError("unexpected EOF")
        if field is not None and field.type == field.TYPE_MESSAGE:
            _walk(data[i : i + length], field.message_type)
        i += length
    elif wire_type == 3:
        raise _WireError("proto: illegal wireType 3")  # etcd's messages have no groups
    else:
        raise _WireError(f"proto: illegal wireType {wire_type}")
    if i > len(data):
        raise _WireError("unexpected EOF")
    return i


def _backend_hash(backend) -> int:
    """etcd's Hash: a crc32 over every bucket's keys and values except the meta bucket."""
    value = 0
    for bucket in ("alarm", "key", "lease", "members"):
        value = zlib.crc32(bucket.encode(), value)
        for key, val in backend.scan(bucket):
            value = zlib.crc32(val, zlib.crc32(key, value))
    return value


def version_info() -> dict:
    return {"etcdserver": SERVER_VERSION, "etcdcluster": CLUSTER_VERSION, "flotilla": __version__}

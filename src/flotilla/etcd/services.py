"""The v3 gRPC services (KV, Lease, Cluster, Maintenance) over an ``EtcdServer``; Watch is in
``watch_service``. The same servicer objects serve gRPC and the JSON gateway.

Request validation happens here, before a request is proposed, as etcd's ``v3rpc`` does; the semantics of
applying it are in ``flotilla.etcd.apply``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import tempfile
import zlib
from pathlib import Path

import grpc

from flotilla import __version__
from flotilla.etcd import errors
from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc
from flotilla.etcd.server import EtcdServer
from flotilla.mvcc.errors import CompactedError, FutureRevisionError, LeaseNotFoundError

__all__ = ["ClusterService", "KVService", "LeaseService", "MaintenanceService", "SERVER_VERSION"]

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
            for branch in (op.request_txn.success, op.request_txn.failure):
                nested_puts, nested_deletes = _write_intervals(branch)
                if puts & nested_puts:
                    raise errors.duplicate_key()
                deletes.extend(nested_deletes)
            puts |= _write_intervals(op.request_txn.success)[0] | _write_intervals(op.request_txn.failure)[0]
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
        await server.read_barrier()
        resp = rpc_pb2.LeaseLeasesResponse(header=server.header(server.store.revision))
        for lease in server.lessor.leases():
            resp.leases.add(ID=lease.id)
        return resp


class ClusterService(rpc_pb2_grpc.ClusterServicer):
    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    @_etcd_errors
    async def MemberList(self, request, context):
        server = self.server
        resp = rpc_pb2.MemberListResponse(header=server.header(server.store.revision))
        for member in sorted(server.members.values(), key=lambda m: m.id):
            resp.members.add(
                ID=member.id,
                name=member.name,
                peerURLs=list(member.peer_urls),
                clientURLs=list(member.client_urls),
                isLearner=member.is_learner,
            )
        return resp

    async def _membership_change(self, request, context):
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "etcdserver: this Flotilla member runs as a single-member cluster; membership changes arrive "
            "with the peer transport",
        )

    MemberAdd = MemberRemove = MemberUpdate = MemberPromote = _membership_change


class MaintenanceService(rpc_pb2_grpc.MaintenanceServicer):
    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    @_etcd_errors
    async def Alarm(self, request, context):
        server = self.server
        if request.action == rpc_pb2.AlarmRequest.GET:
            return server._apply_alarm(request)
        return await server.propose("alarm", request)

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
            header=server.header(server.store.revision), hash=value, compact_revision=compact_revision
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
        if not server.is_leader():
            raise errors.not_leader()
        if request.targetID not in server.members or request.targetID == server.member_id:
            raise errors.bad_leader_transferee()
        raise errors.bad_leader_transferee()


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

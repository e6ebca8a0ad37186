"""etcd's v3 request semantics on the keyspace core: what Range, Put, DeleteRange, Txn, Compaction and the
lease requests do, given a ``KeyValueStore`` and a ``Lessor``.

Every member applies the same committed requests in the same order through ``Applier.apply``, so this
module must be deterministic: no clocks (the primary's lease deadlines are set by the server, outside),
no I/O. Reads that do not go through raft (serializable and linearizable ranges, read-only txns) use
``Applier.range`` and ``Applier.read_txn`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

from flotilla.etcd import errors
from flotilla.etcd.api import kv_pb2, rpc_pb2
from flotilla.mvcc.errors import CompactedError, FutureRevisionError, LeaseExistsError, LeaseNotFoundError
from flotilla.mvcc.lease import LeaseTTLTooLargeError, Lessor
from flotilla.mvcc.store import KeyValueStore
from flotilla.mvcc.types import Event, EventType, KeyValue

__all__ = ["NO_LEASE", "Applier", "event_to_pb", "is_txn_read_only", "to_pb_kv"]

NO_LEASE = 0

_SORT_KEYS: dict[int, Callable] = {
    rpc_pb2.RangeRequest.KEY: attrgetter("key"),
    rpc_pb2.RangeRequest.VERSION: attrgetter("version"),
    rpc_pb2.RangeRequest.CREATE: attrgetter("create_revision"),
    rpc_pb2.RangeRequest.MOD: attrgetter("mod_revision"),
    rpc_pb2.RangeRequest.VALUE: attrgetter("value"),
}
_PbKeyValue = kv_pb2.KeyValue


def to_pb_kv(kv: KeyValue, keys_only: bool = False) -> kv_pb2.KeyValue:
    return _PbKeyValue(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=b"" if keys_only else kv.value,
        lease=kv.lease,
    )


def is_txn_read_only(txn: rpc_pb2.TxnRequest) -> bool:
    """True when neither branch (nor any nested txn) writes: etcd serves such a txn without raft."""
    for op in (*txn.success, *txn.failure):
        kind = op.WhichOneof("request")
        if kind in ("request_put", "request_delete_range"):
            return False
        if kind == "request_txn" and not is_txn_read_only(op.request_txn):
            return False
    return True


def _compare_holds(compare: rpc_pb2.Compare, kv: KeyValue | None) -> bool:
    target = compare.target
    if target == rpc_pb2.Compare.VALUE:
        if kv is None:
            return False  # etcd: a value compare against a missing key always fails
        ours, theirs = kv.value, compare.value
    elif target == rpc_pb2.Compare.VERSION:
        ours, theirs = (kv.version if kv else 0), compare.version
    elif target == rpc_pb2.Compare.CREATE:
        ours, theirs = (kv.create_revision if kv else 0), compare.create_revision
    elif target == rpc_pb2.Compare.MOD:
        ours, theirs = (kv.mod_revision if kv else 0), compare.mod_revision
    else:  # LEASE
        ours, theirs = (kv.lease if kv else 0), compare.lease
    result = compare.result
    if result == rpc_pb2.Compare.EQUAL:
        return ours == theirs
    if result == rpc_pb2.Compare.GREATER:
        return ours > theirs
    if result == rpc_pb2.Compare.LESS:
        return ours < theirs
    return ours != theirs  # NOT_EQUAL


class Applier:
    """Applies requests to the keyspace and the lessor, and builds the responses.

    ``header`` is called to stamp each response with the cluster, member, revision and term.
    ``on_events`` receives the events of every write (the watch hub).
    """

    def __init__(
        self,
        store: KeyValueStore,
        lessor: Lessor,
        header: Callable[[int], rpc_pb2.ResponseHeader],
        on_events: Callable[[list[Event]], None],
    ) -> None:
        self.store = store
        self.lessor = lessor
        self._header = header
        self._on_events = on_events

    # --- reads (no raft) --------------------------------------------------------------------------
    def range(self, r: rpc_pb2.RangeRequest, reader=None, changed: bool = False) -> rpc_pb2.RangeResponse:
        """etcd's Range: limit, sort, revision filters, keys_only, count_only. ``reader`` is a write
        txn when the range runs inside a Txn (it sees the txn's own writes; ``changed`` says whether
        it wrote anything yet)."""
        limit = r.limit
        sort_order = r.sort_order
        if r.sort_target != rpc_pb2.RangeRequest.KEY and sort_order == rpc_pb2.RangeRequest.NONE:
            sort_order = rpc_pb2.RangeRequest.ASCEND
        filtering = r.min_mod_revision or r.max_mod_revision or r.min_create_revision or r.max_create_revision
        sorting = sort_order != rpc_pb2.RangeRequest.NONE and not (
            sort_order == rpc_pb2.RangeRequest.ASCEND and r.sort_target == rpc_pb2.RangeRequest.KEY
        )
        # etcd 3.4 fetches everything only when the request itself names a sort order (or a filter): a
        # non-key target with order NONE sorts just the first limit+1 keys, and clients see that.
        fetch_all = r.sort_order != rpc_pb2.RangeRequest.NONE or filtering or limit <= 0
        fetch_limit = 0 if fetch_all else limit + 1
        try:
            if reader is not None and (r.revision <= 0 or r.revision == _txn_read_revision(reader, changed)):
                result = reader.range(r.key, r.range_end, limit=fetch_limit)
            elif reader is not None:
                # an older revision, checked before the txn began (_check_ops): history without its writes
                result = self.store.range(r.key, r.range_end, revision=r.revision, limit=fetch_limit)
            elif r.count_only and not filtering:
                count = self.store.count(r.key, r.range_end, revision=r.revision)
                return rpc_pb2.RangeResponse(header=self._header(self.store.revision), count=count)
            else:
                result = self.store.range(r.key, r.range_end, revision=r.revision, limit=fetch_limit)
        except CompactedError:
            raise errors.compacted() from None
        except FutureRevisionError:
            raise errors.future_revision() from None
        kvs = result.kvs
        if filtering:
            kvs = _filter_revisions(r, kvs)
        if sorting:
            kvs = sorted(
                kvs, key=_SORT_KEYS[r.sort_target], reverse=sort_order == rpc_pb2.RangeRequest.DESCEND
            )
        resp = rpc_pb2.RangeResponse(header=self._header(result.revision), count=result.count)
        if limit > 0 and len(kvs) > limit:
            kvs = kvs[:limit]
            resp.more = True
        if not r.count_only:
            keys_only = r.keys_only
            resp.kvs.extend([to_pb_kv(kv, keys_only) for kv in kvs])
        return resp

    def read_txn(self, r: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """A txn whose branches only read, served without raft."""
        return self._txn(r, None)

    # --- writes (committed through raft) ----------------------------------------------------------
    def put(self, r: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        return self._write(lambda txn: self._put(txn, r))

    def delete_range(self, r: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        return self._write(lambda txn: self._delete_range(txn, r))

    def txn(self, r: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        return self._write(lambda txn: self._txn(r, txn))

    def _write(self, run):
        """Run ``run(txn)`` in one write txn (one revision), publish its events, stamp the header."""
        txn = self.store.write()
        try:
            resp = run(txn)
        finally:
            events = txn.end()
        if events:
            self._on_events(events)
        resp.header.CopyFrom(self._header(self.store.revision))
        return resp

    def compact(self, r: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        try:
            self.store.compact(r.revision)
        except CompactedError:
            raise errors.compacted() from None
        except FutureRevisionError:
            raise errors.future_revision() from None
        return rpc_pb2.CompactionResponse(header=self._header(self.store.revision))

    def lease_grant(
        self, r: rpc_pb2.LeaseGrantRequest, now_s: float | None = None
    ) -> rpc_pb2.LeaseGrantResponse:
        """``now_s``: the primary's clock, where the new lease's deadline starts (not replicated state)."""
        try:
            lease = self.lessor.grant(r.ID, r.TTL, now_s)
        except LeaseExistsError:
            raise errors.lease_exists() from None
        except LeaseTTLTooLargeError:
            raise errors.lease_ttl_too_large() from None
        return rpc_pb2.LeaseGrantResponse(
            header=self._header(self.store.revision), ID=lease.id, TTL=lease.ttl_s
        )

    def lease_revoke(self, r: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        try:
            keys = self.lessor.revoke(r.ID)
        except LeaseNotFoundError:
            raise errors.lease_not_found() from None
        if keys:
            txn = self.store.write()
            try:
                for key in sorted(keys):
                    txn.delete_range(key)
            finally:
                events = txn.end()
            if events:
                self._on_events(events)
        return rpc_pb2.LeaseRevokeResponse(header=self._header(self.store.revision))

    def lease_checkpoint(self, r: rpc_pb2.LeaseCheckpointRequest) -> rpc_pb2.LeaseCheckpointResponse:
        for checkpoint in r.checkpoints:
            if self.lessor.lookup(checkpoint.ID) is not None:
                self.lessor.checkpoint(checkpoint.ID, checkpoint.remaining_TTL)
        return rpc_pb2.LeaseCheckpointResponse(header=self._header(self.store.revision))

    # --- the pieces -------------------------------------------------------------------------------
    def _put(self, txn, r: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        value, lease = r.value, r.lease
        prev = None
        if r.ignore_value or r.ignore_lease or r.prev_kv:
            found = txn.range(r.key).kvs
            prev = found[0] if found else None
            if prev is None and (r.ignore_value or r.ignore_lease):
                raise errors.key_not_found()
            if r.ignore_value:
                value = prev.value
            if r.ignore_lease:
                lease = prev.lease
        if lease != NO_LEASE and self.lessor.lookup(lease) is None:
            raise errors.lease_not_found()
        old = txn.put(r.key, value, lease)
        if old is not None and old.lease != lease and old.lease != NO_LEASE:
            self.lessor.detach(old.lease, r.key)
        if lease != NO_LEASE and (old is None or old.lease != lease):
            self.lessor.attach(lease, r.key)
        resp = rpc_pb2.PutResponse()
        if r.prev_kv and old is not None:
            resp.prev_kv.CopyFrom(to_pb_kv(old))
        return resp

    def _delete_range(self, txn, r: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        deleted = txn.delete_range(r.key, r.range_end)
        for kv in deleted:
            if kv.lease != NO_LEASE:
                self.lessor.detach(kv.lease, kv.key)
        resp = rpc_pb2.DeleteRangeResponse(deleted=len(deleted))
        if r.prev_kv:
            resp.prev_kvs.extend([to_pb_kv(kv) for kv in deleted])
        return resp

    def _compares_hold(self, r: rpc_pb2.TxnRequest, reader) -> bool:
        for compare in r.compare:
            if reader is not None:
                kvs = reader.range(compare.key, compare.range_end).kvs
            else:
                kvs = self.store.range(compare.key, compare.range_end).kvs
            if not kvs:
                if not _compare_holds(compare, None):
                    return False
            elif not all(_compare_holds(compare, kv) for kv in kvs):
                return False
        return True

    def _txn_path(self, r: rpc_pb2.TxnRequest, reader) -> list[bool]:
        """The outcome of every compare on the way the txn will take, in pre-order (etcd's
        compareToPath). All of them are evaluated before anything is written: a nested txn's compares
        do not see the writes of the branch around it."""
        path = []

        def walk(t: rpc_pb2.TxnRequest) -> None:
            succeeded = self._compares_hold(t, reader)
            path.append(succeeded)
            for op in t.success if succeeded else t.failure:
                if op.WhichOneof("request") == "request_txn":
                    walk(op.request_txn)

        walk(r)
        return path

    def _chosen_ops(self, r: rpc_pb2.TxnRequest, path) -> list[rpc_pb2.RequestOp]:
        """The ops the path selects, nested txns flattened, in execution order."""
        chosen = []
        for op in r.success if next(path) else r.failure:
            if op.WhichOneof("request") == "request_txn":
                chosen.extend(self._chosen_ops(op.request_txn, path))
            else:
                chosen.append(op)
        return chosen

    def _check_ops(self, r: rpc_pb2.TxnRequest, path: list[bool], writes: bool, reader) -> None:
        """Fail before writing anything, as etcd's checkRequests: first every put (its
        ignore_value/ignore_lease target must exist, then its lease), then every range revision, all
        against the state before the txn. So a txn never applies half-way."""
        ops = self._chosen_ops(r, iter(path))
        if writes:
            for op in ops:
                if op.WhichOneof("request") != "request_put":
                    continue
                put = op.request_put
                if (put.ignore_value or put.ignore_lease) and not self._read(reader, put.key).kvs:
                    raise errors.key_not_found()
                if put.lease != NO_LEASE and self.lessor.lookup(put.lease) is None:
                    raise errors.lease_not_found()
        current, first = self.store.revision, self.store.compact_revision
        for op in ops:
            if op.WhichOneof("request") == "request_range" and op.request_range.revision:
                if op.request_range.revision > current:
                    raise errors.future_revision()
                if op.request_range.revision < first:
                    raise errors.compacted()

    def _read(self, reader, key: bytes, range_end: bytes = b""):
        return (reader or self.store).range(key, range_end)

    def _txn(self, r: rpc_pb2.TxnRequest, txn) -> rpc_pb2.TxnResponse:
        """Choose the way with every compare first, check it, then run it."""
        path = self._txn_path(r, txn)
        self._check_ops(r, path, txn is not None, txn)
        resp = self._run_txn(r, txn, iter(path), [False])
        if txn is None:
            resp.header.CopyFrom(self._header(self.store.revision))
        return resp

    def _run_txn(self, r: rpc_pb2.TxnRequest, txn, path, changed: list[bool]) -> rpc_pb2.TxnResponse:
        """Run the branch ``path`` chose. Responses inside a txn carry a header with only the revision
        they saw, as etcd's do: the txn's write revision once it has changed something; a nested txn's
        response has an empty header."""
        succeeded = next(path)
        resp = rpc_pb2.TxnResponse(succeeded=succeeded)
        responses = resp.responses
        for op in r.success if succeeded else r.failure:
            kind = op.WhichOneof("request")
            if kind == "request_range":
                inner = responses.add().response_range
                inner.CopyFrom(self.range(op.request_range, txn, changed[0]))
            elif kind == "request_put":
                inner = responses.add().response_put
                inner.CopyFrom(self._put(txn, op.request_put))
                changed[0] = True
            elif kind == "request_delete_range":
                inner = responses.add().response_delete_range
                inner.CopyFrom(self._delete_range(txn, op.request_delete_range))
                changed[0] = changed[0] or inner.deleted > 0
            elif kind == "request_txn":
                inner = responses.add().response_txn
                inner.CopyFrom(self._run_txn(op.request_txn, txn, path, changed))
                inner.header.Clear()
                inner.header.SetInParent()
                continue
            else:
                continue
            inner.header.Clear()
            if txn is None:
                inner.header.revision = self.store.revision
            else:
                inner.header.revision = txn.revision if changed[0] else txn.revision - 1
        return resp


def _txn_read_revision(txn, changed: bool) -> int:
    """The revision a write txn's reads see: its own once it has written, else the store's."""
    return txn.revision if changed else txn.revision - 1


def _filter_revisions(r: rpc_pb2.RangeRequest, kvs: list[KeyValue]) -> list[KeyValue]:
    lo_mod, hi_mod = r.min_mod_revision, r.max_mod_revision
    lo_create, hi_create = r.min_create_revision, r.max_create_revision
    return [
        kv
        for kv in kvs
        if (not lo_mod or kv.mod_revision >= lo_mod)
        and (not hi_mod or kv.mod_revision <= hi_mod)
        and (not lo_create or kv.create_revision >= lo_create)
        and (not hi_create or kv.create_revision <= hi_create)
    ]


def event_to_pb(event: Event, with_prev: bool) -> kv_pb2.Event:
    pb = kv_pb2.Event(type=kv_pb2.Event.DELETE if event.type == EventType.DELETE else kv_pb2.Event.PUT)
    pb.kv.CopyFrom(to_pb_kv(event.kv))
    if with_prev and event.prev_kv is not None:
        pb.prev_kv.CopyFrom(to_pb_kv(event.prev_kv))
    return pb

"""The v3 keyspace: a multi-version key-value store with etcd's revision semantics (a core without I/O).

The member applies each committed write by opening one :class:`WriteTxn`, calling ``put`` /
``delete_range`` on it and ``end()``; reads go through :meth:`KeyValueStore.range`. After each apply it
drains :meth:`KeyValueStore.take_changes` into the backend's "key" bucket, and after a restart rebuilds the
store with :meth:`KeyValueStore.restore` from that bucket. The RPC layer (sorting, revision filters,
compares, nested txns, prev_kv flags) lives in the member and calls only these primitives.

Revisions follow etcd (mvcc/kvstore.go): an empty store is at revision 1; every write txn that changes
something takes the next main revision and numbers its changes sub 0, 1, 2, ...; a txn that changes nothing
leaves the revision alone. A key's versions form generations: a put on a missing (or deleted) key starts
one (create_revision = mod_revision, version 1), each later put adds a version, a delete ends the
generation with a tombstone (version 0).

Internal structure (the invariants every method keeps):

- ``_hist[key]``: the key's retained versions, oldest first, tombstones included (version 0). A key is in
  ``_hist`` while any version of it is retained; its last element is its current state.
- ``_keys``: the sorted keys of ``_hist`` (past reads); ``_live``: the sorted keys whose current state is
  live, so current ranges slice it and count by two bisections.
- ``_log`` / ``_log_subs``: every retained version as an :class:`Event` (with ``prev_kv``), in revision
  order, and its sub revision; ``events()`` bisects it, ``hash_kv()`` walks it and compaction prunes it.
  Events at or below the compaction point keep no ``prev_kv``: that version was freed.
- A write txn writes in place; the store's revision moves only in ``end()``. Store reads while a txn is
  open see the store as of its revision (through the slower historical path).

Compaction (etcd's ``keyIndex.compact``): at revision C each key keeps its newest version <= C, and only
if that version is live; everything older is freed, so a key whose newest version <= C is a tombstone and
that changed no more after C vanishes. Reads at C still work; reads below C raise CompactedError.
"""

from __future__ import annotations

import gc
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import attrgetter, itemgetter
from typing import NamedTuple
from zlib import crc32

from sortedcontainers import SortedList

from . import codec
from .errors import CompactedError, FutureRevisionError
from .types import Event, EventType, KeyValue

__all__ = ["KeyValueStore", "RangeResult", "WriteTxn"]

# Tuple fields by position: the hot paths avoid NamedTuple's Python-level __new__ and attribute lookups.
# KeyValue: 0 key, 1 create_revision, 2 mod_revision, 3 version, 4 value, 5 lease.
# Event: 0 type, 1 kv, 2 prev_kv.
_new_tuple = tuple.__new__
_PUT = EventType.PUT
_DELETE = EventType.DELETE
_KV_MOD_REVISION = itemgetter(2)
_EVENT_MOD_REVISION = attrgetter("kv.mod_revision")
_ALL_FROM = b"\0"  # etcd: a range_end of "\0" means every key >= key


class RangeResult(NamedTuple):
    """``kvs`` sorted by key, at most ``limit`` of them; ``count`` matching keys in total (ignoring the
    limit); ``revision`` the store revision the read saw (the current one, even for a past read)."""

    kvs: list[KeyValue]
    count: int
    revision: int


class KeyValueStore:
    """The keyspace. Single-threaded: the member calls it from its apply loop only.

    ``revision`` is the current revision (1 when empty), ``compact_revision`` the last compaction point
    (0 when never compacted). With ``track_changes=False`` nothing is recorded for :meth:`take_changes`
    (for a store without a backend: tests, benchmarks, simulations)."""

    __slots__ = (
        "revision",
        "compact_revision",
        "_hist",
        "_keys",
        "_live",
        "_log",
        "_log_subs",
        "_pending",
        "_track_changes",
        "_txn",
    )

    def __init__(self, *, track_changes: bool = True) -> None:
        self.revision = 1
        self.compact_revision = 0
        self._hist: dict[bytes, list[KeyValue]] = {}
        self._keys = SortedList()
        self._live = SortedList()
        self._log: list[Event] = []
        self._log_subs: list[int] = []
        # Batches for take_changes: (events of one txn, None) - subs are positions - or (freed kvs, subs).
        self._pending: list[tuple[Sequence, list[int] | None]] = []
        self._track_changes = track_changes
        self._txn: WriteTxn | None = None

    def __len__(self) -> int:
        """The number of live keys (etcd_debugging_mvcc_keys_total)."""
        return len(self._live)

    @property
    def retained_versions(self) -> int:
        """How many versions (tombstones included) the store holds: what compaction shrinks, and the number
        of entries the backend's "key" bucket has once every change is taken."""
        return len(self._log)

    # -- reads -------------------------------------------------------------------------------------------

    def range(self, key: bytes, range_end: bytes = b"", *, revision: int = 0, limit: int = 0) -> RangeResult:
        """The live keys in the range at ``revision`` (0 or less: the current one).

        ``range_end`` b"" selects exactly ``key``; b"\\0" every key >= ``key``; otherwise [key, range_end).
        Raises CompactedError if ``revision`` is below ``compact_revision`` (a read at it is fine) and
        FutureRevisionError if it is beyond the current revision."""
        current = self.revision
        if limit < 0:
            limit = 0  # as etcd: no limit
        if revision <= 0 or revision == current:
            if self._txn is None:
                return self._range_current(key, range_end, limit, current)
            revision = current
        else:
            self._check_read_revision(revision)
        return self._range_at(key, range_end, revision, limit, current)

    def count(self, key: bytes, range_end: bytes = b"", *, revision: int = 0) -> int:
        """The number of live keys in the range at ``revision`` (as :meth:`range`'s ``count``)."""
        current = self.revision
        if revision <= 0 or revision == current:
            if self._txn is None:
                start, stop = self._live_slice(key, range_end)
                return stop - start
            revision = current
        else:
            self._check_read_revision(revision)
        return self._range_at(key, range_end, revision, -1, current).count

    def _check_read_revision(self, revision: int) -> None:
        if revision > self.revision:
            raise FutureRevisionError(revision, self.revision)
        if revision < self.compact_revision:
            raise CompactedError(revision, self.compact_revision)

    def _live_slice(self, key: bytes, range_end: bytes) -> tuple[int, int]:
        """Positions in ``_live`` of the keys in the range (current state)."""
        live = self._live
        if not range_end:
            start = live.bisect_left(key)
            return start, start + (start < len(live) and live[start] == key)
        if range_end == _ALL_FROM:
            return live.bisect_left(key), len(live)
        if key >= range_end:
            return 0, 0
        return live.bisect_left(key), live.bisect_left(range_end)

    def _range_current(self, key: bytes, range_end: bytes, limit: int, revision: int) -> RangeResult:
        """A range over the current state (including an open txn's writes), reported at ``revision``."""
        if not range_end:
            # The single-key read is the hot path: one dict lookup.
            hist = self._hist.get(key)
            if hist is not None:
                kv = hist[-1]
                if kv[3]:
                    return RangeResult([kv], 1, revision)
            return RangeResult([], 0, revision)
        start, stop = self._live_slice(key, range_end)
        count = stop - start
        if limit > 0 and limit < count:
            stop = start + limit
        hist = self._hist
        kvs = [hist[k][-1] for k in self._live.islice(start, stop)]
        return RangeResult(kvs, count, revision)

    def _range_at(self, key: bytes, range_end: bytes, revision: int, limit: int, current: int) -> RangeResult:
        """A range at a past ``revision`` (already checked); ``limit`` < 0 only counts."""
        hist = self._hist
        if not range_end:
            versions = hist.get(key)
            kv = _version_at(versions, revision) if versions is not None else None
            if kv is None or not kv[3]:
                return RangeResult([], 0, current)
            return RangeResult([] if limit < 0 else [kv], 1, current)
        if range_end == _ALL_FROM:
            keys = self._keys.irange(key, None)
        elif key >= range_end:
            return RangeResult([], 0, current)
        else:
            keys = self._keys.irange(key, range_end, inclusive=(True, False))
        kvs: list[KeyValue] = []
        count = 0
        for k in keys:
            kv = _version_at(hist[k], revision)
            if kv is not None and kv[3]:
                count += 1
                if limit == 0 or count <= limit:
                    kvs.append(kv)
        return RangeResult(kvs, count, current)

    def events(
        self,
        start_revision: int,
        key: bytes = b"",
        range_end: bytes = b"",
        *,
        end_revision: int = 0,
        limit: int = 0,
    ) -> list[Event]:
        """Every change with ``start_revision <= mod_revision`` (``<= end_revision`` if non-zero) on keys in
        the range, in revision order (main, sub).

        ``key`` b"" (never a valid etcd key) selects every key; otherwise the range is read as in
        :meth:`range`. With ``limit`` > 0, at most ``limit`` events plus the rest of the last one's main
        revision: a txn's changes are never split. Each event carries ``prev_kv``, the key's previous live
        version, None for a creation - and also for a change at the compaction point itself, whose previous
        version compaction freed (etcd's watch sends no prev_kv then either). Raises CompactedError if
        ``start_revision`` is below ``compact_revision``. Cost: a bisection plus the events scanned."""
        if start_revision < self.compact_revision:
            raise CompactedError(start_revision, self.compact_revision)
        log = self._log
        size = len(log)
        index = bisect_left(log, start_revision, key=_EVENT_MOD_REVISION)
        if index == size:
            return []
        matches = _key_matcher(key, range_end)
        out: list[Event] = []
        last_main = 0  # non-zero once the limit is reached: finish that main revision, then stop
        for position in range(index, size):
            event = log[position]
            kv = event[1]
            main = kv[2]
            if end_revision and main > end_revision:
                break
            if last_main and main != last_main:
                break
            if matches is not None and not matches(kv[0]):
                continue
            out.append(event)
            if limit > 0 and not last_main and len(out) >= limit:
                last_main = main
        return out

    def hash_kv(self, revision: int = 0) -> tuple[int, int]:
        """``(hash, compact_revision)``: a CRC-32 of every retained version with mod_revision <=
        ``revision`` (0: the current one), each as its backend key and record, in revision order. Members
        with the same history and compaction point give equal hashes (Maintenance.HashKV).

        Raises CompactedError if 0 < ``revision`` <= ``compact_revision`` (as etcd does, the compaction
        point included) and FutureRevisionError beyond the current revision."""
        if 0 < revision <= self.compact_revision:
            raise CompactedError(revision, self.compact_revision)
        if revision > self.revision:
            raise FutureRevisionError(revision, self.revision)
        if revision <= 0:
            revision = self.revision
        revision_key = codec.revision_key
        encode_record = codec.encode_record
        crc = crc32(b"key")
        for event, sub in zip(self._log, self._log_subs, strict=True):
            kv = event[1]
            if kv[2] > revision:
                break
            crc = crc32(revision_key((kv[2], sub), not kv[3]), crc)
            crc = crc32(encode_record(kv), crc)
        return crc, self.compact_revision

    # -- writes ------------------------------------------------------------------------------------------

    def write(self) -> WriteTxn:
        """Open the write txn of the next revision. At most one is open at a time; nothing can be undone,
        so the caller checks a request (compares, limits) before writing."""
        assert self._txn is None, "a write txn is already open"
        txn = WriteTxn(self, self.revision + 1)
        self._txn = txn
        return txn

    def compact(self, revision: int) -> None:
        """Free every version superseded at ``revision`` (see the module docstring).

        Raises CompactedError if ``revision`` <= ``compact_revision`` (except compacting a never-compacted
        store at 0, which etcd accepts as a no-op) and FutureRevisionError if beyond the current one."""
        assert self._txn is None, "compact() during an open write txn"
        if revision > self.revision:
            raise FutureRevisionError(revision, self.revision)
        previous = self.compact_revision
        if revision <= previous and not (revision == 0 == previous):
            raise CompactedError(revision, previous)
        self.compact_revision = revision
        if revision > previous:
            with _gc_paused():
                self._compact_log(revision, previous)

    def _compact_log(self, revision: int, previous: int) -> None:
        """Prune ``_log`` and ``_hist`` to the versions compaction at ``revision`` keeps.

        Versions at or below ``previous`` (the last compaction point) are already one live version per key,
        so only keys changed in (previous, revision] can lose anything: the pass over older entries runs
        only when one of those keys still has such a version."""
        log, subs, hist = self._log, self._log_subs, self._hist
        old_cut = bisect_right(log, previous, key=_EVENT_MOD_REVISION) if previous > 0 else 0
        cut = bisect_right(log, revision, lo=old_cut, key=_EVENT_MOD_REVISION)
        # The last change of each key in (previous, revision]: the version this compaction may keep.
        newest = {log[i][1][0]: i for i in range(old_cut, cut)}
        superseded = {key for key in newest if hist[key][0][2] <= previous}
        freed: list[KeyValue] = []
        freed_subs: list[int] = []
        kept_events: list[Event] = []
        kept_subs: list[int] = []
        start = 0 if superseded else old_cut
        for i in range(start, cut):
            event = log[i]
            kv = event[1]
            if i < old_cut:
                keep = kv[0] not in superseded
            else:
                keep = newest[kv[0]] == i and kv[3] != 0
            if not keep:
                freed.append(kv)
                freed_subs.append(subs[i])
            elif event[2] is None:
                kept_events.append(event)
                kept_subs.append(subs[i])
            else:
                # Its previous version is freed: drop the reference so the memory really goes.
                kept_events.append(_new_tuple(Event, (event[0], kv, None)))
                kept_subs.append(subs[i])
        log[start:cut] = kept_events
        subs[start:cut] = kept_subs
        freed_per_key: dict[bytes, int] = {}
        for kv in freed:
            freed_per_key[kv[0]] = freed_per_key.get(kv[0], 0) + 1
        for key, count in freed_per_key.items():
            # A key's freed versions are exactly its oldest ``count`` ones.
            versions = hist[key]
            del versions[:count]
            if not versions:
                del hist[key]
                self._keys.remove(key)
        if freed and self._track_changes:
            self._pending.append((freed, freed_subs))

    def take_changes(self) -> list[tuple[bytes, bytes | None]]:
        """The backend changes since the last call, in order: ``(revision key, record)`` for each new
        version or tombstone, ``(revision key, None)`` for each version compaction freed (see
        :mod:`flotilla.mvcc.codec`). Empty when the store was made with ``track_changes=False``."""
        pending, self._pending = self._pending, []
        revision_key = codec.revision_key
        encode_record = codec.encode_record
        out: list[tuple[bytes, bytes | None]] = []
        for batch, freed_subs in pending:
            if freed_subs is not None:
                for kv, sub in zip(batch, freed_subs, strict=True):
                    out.append((revision_key((kv[2], sub), not kv[3]), None))
            else:
                for sub, event in enumerate(batch):
                    kv = event[1]
                    out.append((revision_key((kv[2], sub), not kv[3]), encode_record(kv)))
        return out

    @classmethod
    def restore(
        cls, records: Iterable[tuple[bytes, bytes]], compact_revision: int, *, track_changes: bool = True
    ) -> KeyValueStore:
        """Rebuild a store from the backend's "key" bucket, ``records`` in key (= revision) order.

        The revision becomes max(largest record revision, ``compact_revision``, 1). If the bucket still
        holds versions the compaction at ``compact_revision`` frees (a crash before the backend caught
        up), they are freed now and show up in :meth:`take_changes`. Raises ValueError on a record out of
        revision order or a malformed key or record."""
        with _gc_paused():
            return cls._restore(records, compact_revision, track_changes)

    @classmethod
    def _restore(
        cls, records: Iterable[tuple[bytes, bytes]], compact_revision: int, track_changes: bool
    ) -> KeyValueStore:
        store = cls(track_changes=track_changes)
        hist, log, subs = store._hist, store._log, store._log_subs
        unpack_revision = codec._unpack_revision
        unpack_header = codec._unpack_header
        header_size = codec._HEADER_SIZE
        last = (0, 0)
        stale = False  # a version compaction should have freed is still there
        for key_bytes, record in records:
            try:
                main, _separator, sub = unpack_revision(key_bytes)
                # codec.decode_record, inlined: this loop runs once per version in the backend.
                create_revision, mod_revision, version, lease, key_size = unpack_header(record)
            except Exception as exc:
                raise ValueError(f"malformed mvcc record {key_bytes!r}: {record[:64]!r}") from exc
            if (main, sub) <= last:
                raise ValueError(f"mvcc record {main}_{sub} out of revision order (after {last})")
            last = (main, sub)
            key_end = header_size + key_size
            key = record[header_size:key_end]
            kv = _new_tuple(KeyValue, (key, create_revision, mod_revision, version, record[key_end:], lease))
            versions = hist.get(key)
            if versions is None:
                hist[key] = [kv]
                prev = None
            else:
                prev = versions[-1]
                if prev[2] <= compact_revision:
                    stale = True
                if not prev[3]:
                    prev = None
                versions.append(kv)
            if version:
                log.append(_new_tuple(Event, (_PUT, kv, prev)))
            else:
                stale = stale or main <= compact_revision
                log.append(_new_tuple(Event, (_DELETE, kv, prev)))
            subs.append(sub)
        store._keys = SortedList(hist)
        store._live = SortedList([key for key, versions in hist.items() if versions[-1][3]])
        store.revision = max(last[0], compact_revision, 1)
        store.compact_revision = compact_revision
        if stale:
            store._compact_log(compact_revision, 0)
        return store


class WriteTxn:
    """One write transaction at ``revision`` (the store's revision + 1). Writes apply in place and are
    numbered sub 0, 1, ... in call order; ``end()`` publishes them. A txn cannot be rolled back."""

    __slots__ = ("revision", "_store", "_events", "_ended")

    def __init__(self, store: KeyValueStore, revision: int) -> None:
        self.revision = revision
        self._store = store
        self._events: list[Event] = []
        self._ended = False

    def range(self, key: bytes, range_end: bytes = b"", *, limit: int = 0) -> RangeResult:
        """As :meth:`KeyValueStore.range` at the current revision, seeing this txn's writes so far;
        reported at ``revision`` once the txn changed something, before that at the store's revision
        (etcd's storeTxnWrite.Range)."""
        reported = self.revision if self._events else self.revision - 1
        return self._store._range_current(key, range_end, limit, reported)

    def put(self, key: bytes, value: bytes, lease: int = 0) -> KeyValue | None:
        """Write a new version of ``key``; returns its previous live version (None if it had none)."""
        store = self._store
        revision = self.revision
        versions = store._hist.get(key)
        if versions is None:
            kv = _new_tuple(KeyValue, (key, revision, revision, 1, value, lease))
            store._hist[key] = [kv]
            store._keys.add(key)
            store._live.add(key)
            prev = None
        else:
            prev = versions[-1]
            if prev[3]:
                kv = _new_tuple(KeyValue, (key, prev[1], revision, prev[3] + 1, value, lease))
            else:
                prev = None
                kv = _new_tuple(KeyValue, (key, revision, revision, 1, value, lease))
                store._live.add(key)
            versions.append(kv)
        self._events.append(_new_tuple(Event, (_PUT, kv, prev)))
        return prev

    def delete_range(self, key: bytes, range_end: bytes = b"") -> list[KeyValue]:
        """Delete the live keys in the range (read as in :meth:`KeyValueStore.range`); returns their
        deleted versions in key order. Missing keys change nothing."""
        store = self._store
        hist = store._hist
        live = store._live
        if not range_end:
            versions = hist.get(key)
            keys = [key] if versions is not None and versions[-1][3] else []
        else:
            start, stop = store._live_slice(key, range_end)
            keys = list(live.islice(start, stop))
        revision = self.revision
        events = self._events
        deleted: list[KeyValue] = []
        for k in keys:
            versions = hist[k]
            prev = versions[-1]
            tombstone = _new_tuple(KeyValue, (k, 0, revision, 0, b"", 0))
            versions.append(tombstone)
            live.remove(k)
            events.append(_new_tuple(Event, (_DELETE, tombstone, prev)))
            deleted.append(prev)
        return deleted

    def end(self) -> list[Event]:
        """Close the txn. If it changed anything the store's revision becomes ``revision``; returns the
        changes as events in sub order (empty, and no revision bump, if nothing changed)."""
        assert not self._ended, "write txn ended twice"
        self._ended = True
        store = self._store
        store._txn = None
        events = self._events
        if events:
            store.revision = self.revision
            store._log.extend(events)
            if len(events) == 1:
                store._log_subs.append(0)
            else:
                store._log_subs.extend(range(len(events)))
            if store._track_changes:
                # A copy: the caller owns the returned list (the watch hub may filter it in place).
                store._pending.append((tuple(events), None))
        return events


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a bulk build or prune.

    Such a pass allocates hundreds of thousands of tuples and lists, and each allocation threshold crossed
    runs a collection over the whole (large) heap: that tripled restore's and compaction's time. None of
    the objects made here form cycles, so nothing is lost by collecting once afterwards, when the
    collector resumes its normal schedule."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _version_at(versions: list[KeyValue], revision: int) -> KeyValue | None:
    """The newest of a key's versions with mod_revision <= ``revision`` (None if all are newer)."""
    kv = versions[-1]
    if kv[2] <= revision:
        return kv
    index = bisect_right(versions, revision, key=_KV_MOD_REVISION)
    return versions[index - 1] if index else None


def _key_matcher(key: bytes, range_end: bytes):
    """A predicate for keys in the range, or None for "every key"."""
    if not key and (not range_end or range_end == _ALL_FROM):
        return None
    if not range_end:
        return key.__eq__
    if range_end == _ALL_FROM:
        return key.__le__
    return lambda k: key <= k < range_end

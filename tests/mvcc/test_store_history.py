"""The keyspace's history: events() for watches, HashKV, the backend changes and restore after a restart,
and the backend codec."""

from __future__ import annotations

import pytest

from flotilla.mvcc import codec
from flotilla.mvcc.errors import CompactedError, FutureRevisionError
from flotilla.mvcc.store import KeyValueStore
from flotilla.mvcc.types import Event, EventType, KeyValue, Revision


def put(store: KeyValueStore, key: bytes, value: bytes = b"v", lease: int = 0) -> None:
    txn = store.write()
    txn.put(key, value, lease)
    txn.end()


def delete(store: KeyValueStore, key: bytes, range_end: bytes = b"") -> None:
    txn = store.write()
    txn.delete_range(key, range_end)
    txn.end()


def history() -> KeyValueStore:
    """a: 2 put, 3 put, 6 delete; b: 4 put, 7 put; c: 5 put, 8 delete, 9 put; 10: one txn puts d and e."""
    store = KeyValueStore()
    put(store, b"a", b"a1")
    put(store, b"a", b"a2")
    put(store, b"b", b"b1", lease=5)
    put(store, b"c", b"c1")
    delete(store, b"a")
    put(store, b"b", b"b2")
    delete(store, b"c")
    put(store, b"c", b"c2")
    txn = store.write()
    txn.put(b"d", b"d1")
    txn.put(b"e", b"e1")
    txn.end()
    return store


def revisions(events: list[Event]) -> list[tuple[bytes, int]]:
    return [(e.kv.key, e.kv.mod_revision) for e in events]


# -- events -------------------------------------------------------------------------------------------


def test_events_are_every_change_from_a_revision_on_in_revision_order() -> None:
    store = history()
    assert revisions(store.events(7)) == [(b"b", 7), (b"c", 8), (b"c", 9), (b"d", 10), (b"e", 10)]
    assert revisions(store.events(1)) == revisions(store.events(0))
    assert len(store.events(1)) == 10
    assert store.events(11) == [] and store.events(100) == []


def test_events_carry_the_previous_live_version() -> None:
    store = history()
    a2 = store.events(3, b"a")[0]
    (a_deleted,) = store.events(6, b"a")
    c_deleted, c_recreated = store.events(8, b"c")
    assert a2.prev_kv == KeyValue(b"a", 2, 2, 1, b"a1")
    assert a_deleted == Event(EventType.DELETE, KeyValue(b"a", 0, 6, 0), KeyValue(b"a", 2, 3, 2, b"a2"))
    assert c_deleted.prev_kv == KeyValue(b"c", 5, 5, 1, b"c1")
    assert c_recreated == Event(EventType.PUT, KeyValue(b"c", 9, 9, 1, b"c2"), None)  # a creation


@pytest.mark.parametrize(
    ("key", "range_end", "expected"),
    [
        (b"c", b"", [(b"c", 5), (b"c", 8), (b"c", 9)]),
        (b"b", b"d", [(b"b", 4), (b"b", 7), (b"c", 5), (b"c", 8), (b"c", 9)]),
        (b"d", b"\0", [(b"d", 10), (b"e", 10)]),
        (b"\0", b"\0", None),  # everything
        (b"", b"", None),
        (b"x", b"", []),
    ],
)
def test_events_filter_by_key_range(key: bytes, range_end: bytes, expected: list | None) -> None:
    store = history()
    found = sorted(revisions(store.events(1, key, range_end)), key=lambda kr: (kr[1], kr[0]))
    if expected is None:
        assert len(found) == 10
    else:
        assert found == sorted(expected, key=lambda kr: (kr[1], kr[0]))


def test_events_stop_at_end_revision() -> None:
    assert revisions(history().events(3, end_revision=5)) == [(b"a", 3), (b"b", 4), (b"c", 5)]


def test_a_limit_never_splits_one_revision() -> None:
    store = history()
    assert revisions(store.events(2, limit=2)) == [(b"a", 2), (b"a", 3)]
    assert revisions(store.events(9, limit=2)) == [(b"c", 9), (b"d", 10), (b"e", 10)]
    assert revisions(store.events(10, limit=1)) == [(b"d", 10), (b"e", 10)]


def test_events_before_the_compaction_point_are_gone() -> None:
    store = history()
    store.compact(7)
    with pytest.raises(CompactedError):
        store.events(6)
    # At the point itself: the change survives, but its previous version was freed (etcd's watch sends
    # no prev_kv then either).
    assert store.events(7)[0] == Event(EventType.PUT, KeyValue(b"b", 4, 7, 2, b"b2"), None)
    assert revisions(store.events(7)) == [(b"b", 7), (b"c", 8), (b"c", 9), (b"d", 10), (b"e", 10)]
    assert store.events(8)[0].prev_kv == KeyValue(b"c", 5, 5, 1, b"c1")


# -- HashKV -------------------------------------------------------------------------------------------


def test_equal_histories_hash_equal_and_different_ones_differ() -> None:
    assert history().hash_kv() == history().hash_kv()
    other = history()
    put(other, b"e", b"e2")
    assert other.hash_kv(10) == history().hash_kv(10)  # a hash at a revision ignores what came after
    assert other.hash_kv() != history().hash_kv()
    changed_value = history()
    txn = changed_value.write()
    txn.put(b"f", b"x")
    txn.end()
    assert changed_value.hash_kv() != other.hash_kv()


def test_hash_reports_the_compaction_point_and_follows_compaction() -> None:
    store, same = history(), history()
    store.compact(6)
    same.compact(6)
    assert store.hash_kv() == same.hash_kv()
    assert store.hash_kv()[1] == 6
    assert store.hash_kv() != history().hash_kv()
    with pytest.raises(CompactedError):
        store.hash_kv(6)  # etcd refuses the compaction point itself
    with pytest.raises(FutureRevisionError):
        store.hash_kv(11)


# -- backend changes and restore ----------------------------------------------------------------------


def apply_changes(bucket: dict[bytes, bytes], store: KeyValueStore) -> None:
    for key, record in store.take_changes():
        if record is None:
            del bucket[key]
        else:
            assert key not in bucket
            bucket[key] = record


def assert_same(restored: KeyValueStore, original: KeyValueStore) -> None:
    assert (restored.revision, restored.compact_revision) == (original.revision, original.compact_revision)
    assert len(restored) == len(original) and restored.retained_versions == original.retained_versions
    assert restored.hash_kv() == original.hash_kv()
    for revision in range(max(original.compact_revision, 1), original.revision + 1):
        seen = restored.range(b"\0", b"\0", revision=revision)
        assert seen == original.range(b"\0", b"\0", revision=revision)
    assert restored.events(original.compact_revision) == original.events(original.compact_revision)


def test_take_changes_lists_each_version_once_in_revision_order() -> None:
    store = history()
    changes = store.take_changes()
    assert [codec.parse_revision_key(key) for key, _ in changes[:3]] == [
        (Revision(2, 0), False),
        (Revision(3, 0), False),
        (Revision(4, 0), False),
    ]
    assert codec.parse_revision_key(changes[4][0]) == (Revision(6, 0), True)
    assert codec.parse_revision_key(changes[-1][0]) == (Revision(10, 1), False)
    assert codec.decode_record(changes[2][1]) == KeyValue(b"b", 4, 4, 1, b"b1", 5)
    assert [key for key, _ in changes] == sorted(key for key, _ in changes)
    assert store.take_changes() == []


def test_a_store_without_change_tracking_records_nothing() -> None:
    store = KeyValueStore(track_changes=False)
    put(store, b"a")
    store.compact(2)
    assert store.take_changes() == []


@pytest.mark.parametrize("compact_at", [0, 5, 6, 9, 10])
def test_restore_from_the_backend_gives_back_the_same_store(compact_at: int) -> None:
    store = history()
    bucket: dict[bytes, bytes] = {}
    apply_changes(bucket, store)
    if compact_at:
        store.compact(compact_at)
        apply_changes(bucket, store)
    restored = KeyValueStore.restore(sorted(bucket.items()), store.compact_revision)
    assert_same(restored, store)
    assert restored.take_changes() == []
    put(restored, b"a", b"again")
    put(store, b"a", b"again")
    assert_same(restored, store)


def test_restore_finishes_a_compaction_the_backend_missed() -> None:
    store = history()
    bucket: dict[bytes, bytes] = {}
    apply_changes(bucket, store)
    store.compact(9)
    expected_freed = {key for key, record in store.take_changes() if record is None}
    # A crash after recording the compaction point but before the backend deleted anything:
    restored = KeyValueStore.restore(sorted(bucket.items()), 9)
    assert {key for key, record in restored.take_changes() if record is None} == expected_freed
    assert_same(restored, store)


def test_restore_frees_superseded_versions_the_backend_kept_even_without_tombstones() -> None:
    store = KeyValueStore()
    put(store, b"a", b"1")
    put(store, b"a", b"2")
    bucket: dict[bytes, bytes] = {}
    apply_changes(bucket, store)
    store.compact(3)
    restored = KeyValueStore.restore(sorted(bucket.items()), 3)
    assert restored.take_changes() == [(codec.revision_key(Revision(2, 0)), None)]
    assert_same(restored, store)


def test_restore_of_an_empty_backend() -> None:
    assert KeyValueStore.restore([], 0).revision == 1
    empty_after_compaction = KeyValueStore.restore([], 42)
    assert (empty_after_compaction.revision, empty_after_compaction.compact_revision) == (42, 42)
    txn = empty_after_compaction.write()
    assert txn.revision == 43


def test_restore_refuses_records_out_of_order_or_malformed() -> None:
    bucket: dict[bytes, bytes] = {}
    apply_changes(bucket, history())
    records = sorted(bucket.items())
    with pytest.raises(ValueError, match="out of revision order"):
        KeyValueStore.restore([records[1], records[0]], 0)
    with pytest.raises(ValueError, match="malformed"):
        KeyValueStore.restore([(records[0][0], b"short")], 0)


# -- codec --------------------------------------------------------------------------------------------


def test_revision_keys_sort_in_revision_order_and_mark_tombstones_like_etcd() -> None:
    key = codec.revision_key(Revision(258, 3))
    assert key == b"\0\0\0\0\0\0\x01\x02_\0\0\0\0\0\0\0\x03"
    assert codec.revision_key(Revision(258, 3), tombstone=True) == key + b"t"
    assert codec.revision_key(Revision(2, 300)) < codec.revision_key(Revision(3, 0))
    assert codec.parse_revision_key(key + b"t") == (Revision(258, 3), True)
    for bad in (b"", key[:-1], key + b"x", key.replace(b"_", b"-")):
        with pytest.raises(ValueError):
            codec.parse_revision_key(bad)


@pytest.mark.parametrize(
    "kv",
    [
        KeyValue(b"k", 2, 9, 3, b"value", 0x1234567890),
        KeyValue(b"k\0with\xffbytes", 1, 1, 1, b""),
        KeyValue(b"gone", 0, 7, 0),
        KeyValue(b"big", 5, 6, 2, b"x" * 100_000),
    ],
)
def test_records_round_trip(kv: KeyValue) -> None:
    assert codec.decode_record(codec.encode_record(kv)) == kv


def test_a_truncated_record_is_an_error() -> None:
    record = codec.encode_record(KeyValue(b"key", 2, 2, 1, b"v"))
    for bad in (record[:10], record[:38]):
        with pytest.raises(ValueError):
            codec.decode_record(bad)

"""The v3 keyspace core as etcd's mvcc package specifies it (kvstore.go, kvstore_txn.go, key_index.go,
kvstore_compaction.go): revisions, versions, ranges, write txns, past reads and compaction."""

from __future__ import annotations

import sys

import pytest

from flotilla.mvcc.errors import CompactedError, FutureRevisionError
from flotilla.mvcc.store import KeyValueStore, RangeResult
from flotilla.mvcc.types import Event, EventType, KeyValue


def put(store: KeyValueStore, key: bytes, value: bytes = b"v", lease: int = 0) -> KeyValue | None:
    txn = store.write()
    prev = txn.put(key, value, lease)
    txn.end()
    return prev


def delete(store: KeyValueStore, key: bytes, range_end: bytes = b"") -> list[KeyValue]:
    txn = store.write()
    deleted = txn.delete_range(key, range_end)
    txn.end()
    return deleted


def keys(result: RangeResult) -> list[bytes]:
    return [kv.key for kv in result.kvs]


def filled(*names: bytes) -> KeyValueStore:
    store = KeyValueStore()
    for name in names:
        put(store, name, b"v-" + name)
    return store


# -- revisions and versions ---------------------------------------------------------------------------


def test_an_empty_store_is_at_revision_1_and_never_compacted() -> None:
    store = KeyValueStore()
    assert (store.revision, store.compact_revision, len(store)) == (1, 0, 0)
    assert store.range(b"a") == RangeResult([], 0, 1)
    assert store.range(b"\0", b"\0") == RangeResult([], 0, 1)


def test_a_put_creates_version_1_at_the_next_revision() -> None:
    store = KeyValueStore()
    assert put(store, b"foo", b"bar", lease=7) is None
    assert store.revision == 2
    assert store.range(b"foo") == RangeResult([KeyValue(b"foo", 2, 2, 1, b"bar", 7)], 1, 2)


def test_each_put_bumps_version_and_mod_revision_but_keeps_create_revision() -> None:
    store = KeyValueStore()
    put(store, b"foo", b"1")
    put(store, b"other")
    prev = put(store, b"foo", b"2")
    assert prev == KeyValue(b"foo", 2, 2, 1, b"1")
    assert store.range(b"foo").kvs == [KeyValue(b"foo", 2, 4, 2, b"2")]


def test_a_delete_ends_the_generation_and_a_recreate_starts_over_at_version_1() -> None:
    store = filled(b"foo")
    put(store, b"foo", b"2")
    assert delete(store, b"foo") == [KeyValue(b"foo", 2, 3, 2, b"2")]
    assert store.revision == 4 and store.range(b"foo") == RangeResult([], 0, 4) and len(store) == 0
    put(store, b"foo", b"3")
    assert store.range(b"foo").kvs == [KeyValue(b"foo", 5, 5, 1, b"3")]


def test_a_txn_takes_one_revision_and_numbers_its_changes_in_order() -> None:
    store = filled(b"a")
    txn = store.write()
    assert txn.revision == 3
    txn.put(b"b", b"1")
    txn.delete_range(b"a")
    txn.put(b"c", b"2")
    events = txn.end()
    assert store.revision == 3
    assert events == [
        Event(EventType.PUT, KeyValue(b"b", 3, 3, 1, b"1")),
        Event(EventType.DELETE, KeyValue(b"a", 0, 3, 0), KeyValue(b"a", 2, 2, 1, b"v-a")),
        Event(EventType.PUT, KeyValue(b"c", 3, 3, 1, b"2")),
    ]


def test_a_txn_that_changes_nothing_takes_no_revision() -> None:
    store = filled(b"a")
    txn = store.write()
    assert txn.delete_range(b"missing") == []
    assert txn.delete_range(b"x", b"z") == []
    assert txn.end() == []
    assert store.revision == 2
    txn = store.write()
    assert txn.revision == 3  # the revision an empty txn would have taken is still the next one


def test_a_txn_reads_its_own_writes_at_its_revision_once_it_changed_something() -> None:
    store = filled(b"a")
    txn = store.write()
    assert txn.range(b"a").revision == 2  # nothing changed yet: etcd reports the store's revision
    txn.put(b"a", b"new")
    txn.put(b"b", b"1")
    result = txn.range(b"a", b"\0")
    assert result.revision == 3
    assert [(kv.key, kv.value, kv.version) for kv in result.kvs] == [(b"a", b"new", 2), (b"b", b"1", 1)]
    txn.delete_range(b"b")
    assert keys(txn.range(b"a", b"\0")) == [b"a"]
    txn.end()


def test_store_reads_during_an_open_txn_see_the_last_published_revision() -> None:
    store = filled(b"a")
    txn = store.write()
    txn.put(b"a", b"new")
    txn.put(b"b", b"1")
    assert store.range(b"a", b"\0") == RangeResult([KeyValue(b"a", 2, 2, 1, b"v-a")], 1, 2)
    assert store.count(b"a", b"\0") == 1
    txn.end()
    assert store.count(b"a", b"\0") == 2


def test_putting_a_key_twice_in_one_txn_keeps_both_changes() -> None:
    store = KeyValueStore()
    txn = store.write()
    txn.put(b"k", b"1")
    prev = txn.put(b"k", b"2")
    events = txn.end()
    assert prev == KeyValue(b"k", 2, 2, 1, b"1")
    assert [e.kv.version for e in events] == [1, 2]
    assert store.range(b"k").kvs == [KeyValue(b"k", 2, 2, 2, b"2")]


def test_only_one_write_txn_is_open_at_a_time() -> None:
    store = KeyValueStore()
    store.write()
    with pytest.raises(AssertionError):
        store.write()


# -- ranges -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "range_end", "expected"),
    [
        (b"b", b"", [b"b"]),  # no range_end: exactly the key
        (b"bb", b"", []),
        (b"b", b"\0", [b"b", b"ba", b"c", b"d"]),  # "\0": every key >= key
        (b"\0", b"\0", [b"a", b"b", b"ba", b"c", b"d"]),  # the whole keyspace
        (b"b", b"c", [b"b", b"ba"]),  # [key, range_end)
        (b"b", b"b\0", [b"b"]),
        (b"a", b"zz", [b"a", b"b", b"ba", b"c", b"d"]),
        (b"c", b"b", []),  # range_end before key: nothing
        (b"c", b"c", []),
    ],
)
def test_range_end_forms(key: bytes, range_end: bytes, expected: list[bytes]) -> None:
    store = filled(b"d", b"a", b"ba", b"c", b"b")
    assert keys(store.range(key, range_end)) == expected
    assert store.range(key, range_end).count == len(expected)
    assert store.count(key, range_end) == len(expected)
    # A past read and a read inside a txn walk different structures; they must agree.
    past = filled(b"d", b"a", b"ba", b"c", b"b")
    put(past, b"zzz")
    assert keys(past.range(key, range_end, revision=6)) == expected
    assert past.count(key, range_end, revision=6) == len(expected)
    txn = store.write()
    assert keys(txn.range(key, range_end)) == expected
    txn.end()


def test_ranges_skip_deleted_keys() -> None:
    store = filled(b"a", b"b", b"c")
    delete(store, b"b")
    assert keys(store.range(b"a", b"\0")) == [b"a", b"c"]
    assert len(store) == 2


def test_limit_caps_the_kvs_but_count_is_the_total() -> None:
    store = filled(*[b"k%d" % i for i in range(10)])
    result = store.range(b"k", b"l", limit=3)
    assert keys(result) == [b"k0", b"k1", b"k2"] and result.count == 10
    assert store.range(b"k", b"l", limit=0).count == len(store.range(b"k", b"l", limit=0).kvs) == 10
    assert len(store.range(b"k", b"l", limit=50).kvs) == 10
    past = store.range(b"k", b"l", revision=5, limit=2)
    assert keys(past) == [b"k0", b"k1"] and past.count == 4 and past.revision == 11


# -- past reads ---------------------------------------------------------------------------------------


def test_a_past_read_sees_the_keyspace_as_it_was_and_reports_the_current_revision() -> None:
    store = KeyValueStore()
    put(store, b"a", b"1")  # 2
    put(store, b"a", b"2")  # 3
    put(store, b"b", b"1")  # 4
    delete(store, b"a")  # 5
    put(store, b"a", b"3")  # 6
    assert store.range(b"a", revision=1) == RangeResult([], 0, 6)
    assert store.range(b"a", revision=2).kvs == [KeyValue(b"a", 2, 2, 1, b"1")]
    assert store.range(b"a", revision=4).kvs == [KeyValue(b"a", 2, 3, 2, b"2")]
    assert store.range(b"a", revision=5).kvs == []
    assert store.range(b"a", b"\0", revision=5).kvs == [KeyValue(b"b", 4, 4, 1, b"1")]
    assert store.range(b"a", revision=6).kvs == [KeyValue(b"a", 6, 6, 1, b"3")]
    assert store.range(b"a", revision=4).revision == 6


def test_a_read_beyond_the_current_revision_is_a_future_revision() -> None:
    store = filled(b"a")
    with pytest.raises(FutureRevisionError):
        store.range(b"a", revision=3)
    with pytest.raises(FutureRevisionError):
        store.count(b"a", revision=3)


# -- compaction ---------------------------------------------------------------------------------------


def history() -> KeyValueStore:
    """a: 2 put, 3 put, 6 delete; b: 4 put, 7 put; c: 5 put, 8 delete, 9 put."""
    store = KeyValueStore()
    put(store, b"a", b"a1")
    put(store, b"a", b"a2")
    put(store, b"b", b"b1")
    put(store, b"c", b"c1")
    delete(store, b"a")
    put(store, b"b", b"b2")
    delete(store, b"c")
    put(store, b"c", b"c2")
    return store


def test_after_compaction_reads_below_it_fail_and_reads_at_or_above_it_work() -> None:
    store = history()
    store.compact(5)
    assert store.compact_revision == 5
    with pytest.raises(CompactedError):
        store.range(b"a", revision=4)
    with pytest.raises(CompactedError):
        store.count(b"a", b"\0", revision=4)
    assert keys(store.range(b"\0", b"\0", revision=5)) == [b"a", b"b", b"c"]
    assert store.range(b"a", revision=5).kvs == [KeyValue(b"a", 2, 3, 2, b"a2")]
    assert keys(store.range(b"\0", b"\0", revision=6)) == [b"b", b"c"]
    assert keys(store.range(b"\0", b"\0")) == [b"b", b"c"]


def test_compaction_frees_every_superseded_version() -> None:
    store = history()
    assert store.retained_versions == 8
    store.compact(5)  # a keeps 3, b keeps 4, c keeps 5; a@2 goes
    assert store.retained_versions == 7
    store.compact(9)  # a's tombstone at 6 goes with a@3; b@4, c@5 and c's tombstone at 8 go
    assert store.retained_versions == 2
    assert keys(store.range(b"\0", b"\0", revision=9)) == [b"b", b"c"]


def test_compaction_really_releases_the_freed_versions() -> None:
    store = KeyValueStore()
    value = bytes(bytearray(b"the first value"))  # a fresh object: only the store can hold references
    baseline = sys.getrefcount(value)
    put(store, b"k", value)
    put(store, b"k", b"second")  # its event's prev_kv holds the first version too
    store.take_changes()
    assert sys.getrefcount(value) > baseline
    store.compact(store.revision)
    store.take_changes()  # the freed-version list held it until the backend took it
    assert sys.getrefcount(value) == baseline


def test_a_key_deleted_at_or_before_the_compaction_point_vanishes_with_its_history() -> None:
    store = history()
    store.compact(6)
    assert store.range(b"a", revision=6) == RangeResult([], 0, 9)
    assert [e.kv.key for e in store.events(6)] == [b"b", b"c", b"c"]  # a's delete at 6 is gone too (etcd)
    assert [change for change in store.take_changes() if change[1] is None] == [
        (b"\0" * 7 + b"\x02_" + b"\0" * 8, None),
        (b"\0" * 7 + b"\x03_" + b"\0" * 8, None),
        (b"\0" * 7 + b"\x06_" + b"\0" * 8 + b"t", None),
    ]


def test_compaction_at_or_below_the_last_point_or_in_the_future_fails() -> None:
    store = history()
    store.compact(4)
    with pytest.raises(CompactedError):
        store.compact(4)
    with pytest.raises(CompactedError):
        store.compact(3)
    with pytest.raises(FutureRevisionError):
        store.compact(10)
    store.compact(9)  # the current revision is fine
    assert store.range(b"b").kvs == [KeyValue(b"b", 4, 7, 2, b"b2")]


def test_compacting_a_fresh_store_at_0_is_accepted_as_a_no_op() -> None:
    store = filled(b"a")
    store.compact(0)  # etcd answers "compacted revision 0"
    assert store.compact_revision == 0 and store.retained_versions == 1


def test_writes_after_compaction_continue_the_history() -> None:
    store = history()
    store.compact(9)
    put(store, b"b", b"b3")
    assert store.range(b"b").kvs == [KeyValue(b"b", 4, 10, 3, b"b3")]
    assert store.range(b"b", revision=9).kvs == [KeyValue(b"b", 4, 7, 2, b"b2")]
    events = store.events(10)
    assert events == [Event(EventType.PUT, KeyValue(b"b", 4, 10, 3, b"b3"), KeyValue(b"b", 4, 7, 2, b"b2"))]

"""A property test: random write txns, compactions, reads and restarts against a simple model.

The model keeps the whole keyspace as a dict per revision and the changes as a flat list; it derives
versions, ranges, events and compaction from those by brute force. Each seed is printed on failure and
can be replayed by running the one parametrized case.
"""

from __future__ import annotations

import random

import pytest

from flotilla.mvcc.errors import CompactedError, FutureRevisionError
from flotilla.mvcc.store import KeyValueStore
from flotilla.mvcc.types import Event, EventType, KeyValue

KEYS = [b"a", b"ab", b"b", b"b\0", b"ba", b"c", b"d", b"e", b"zz"]


class Model:
    """The keyspace by brute force: ``states[r]`` is the live keyspace at revision r."""

    def __init__(self) -> None:
        self.states: list[dict[bytes, KeyValue]] = [{}, {}]  # revisions 0 and 1: empty
        self.changes: list[tuple[int, int, Event]] = []  # (main, sub, event), every change ever
        self.compact_revision = 0

    @property
    def revision(self) -> int:
        return len(self.states) - 1

    def txn(self, ops: list[tuple]) -> list[Event]:
        state = dict(self.states[-1])
        revision = self.revision + 1
        events: list[Event] = []
        for op in ops:
            if op[0] == "put":
                _, key, value, lease = op
                prev = state.get(key)
                if prev is None:
                    kv = KeyValue(key, revision, revision, 1, value, lease)
                else:
                    kv = KeyValue(key, prev.create_revision, revision, prev.version + 1, value, lease)
                state[key] = kv
                events.append(Event(EventType.PUT, kv, prev))
            else:
                _, key, range_end = op
                for k in in_range(sorted(state), key, range_end):
                    events.append(Event(EventType.DELETE, KeyValue(k, 0, revision, 0), state.pop(k)))
        if events:
            self.states.append(state)
            self.changes.extend((revision, sub, event) for sub, event in enumerate(events))
        return events

    def range(self, key: bytes, range_end: bytes, revision: int) -> list[KeyValue]:
        state = self.states[revision or self.revision]
        return [state[k] for k in in_range(sorted(state), key, range_end)]

    def events(self, start: int, key: bytes, range_end: bytes) -> list[Event]:
        """Changes from ``start`` on, as the store keeps them after compactions (see the store's docstring):
        of the changes at or below the compaction point only each key's last one survives, if live, and
        without its prev_kv."""
        last_at_or_below: dict[bytes, tuple[int, int]] = {}
        for main, sub, event in self.changes:
            if main <= self.compact_revision:
                last_at_or_below[event.kv.key] = (main, sub)
        out = []
        for main, sub, event in self.changes:
            if main < start or (key and not in_range([event.kv.key], key, range_end)):
                continue
            if main <= self.compact_revision:
                if last_at_or_below[event.kv.key] != (main, sub) or event.type == EventType.DELETE:
                    continue
                event = event._replace(prev_kv=None)
            out.append(event)
        return out


def in_range(keys: list[bytes], key: bytes, range_end: bytes) -> list[bytes]:
    if not range_end:
        return [k for k in keys if k == key]
    if range_end == b"\0":
        return [k for k in keys if k >= key]
    return [k for k in keys if key <= k < range_end]


def random_range(rng: random.Random) -> tuple[bytes, bytes]:
    key = rng.choice(KEYS)
    return key, rng.choice([b"", b"", b"\0", rng.choice(KEYS), key + b"\0"])


def random_ops(rng: random.Random) -> list[tuple]:
    ops: list[tuple] = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if rng.random() < 0.7:
            ops.append(("put", rng.choice(KEYS), b"%d" % rng.randrange(1000), rng.choice([0, 0, 7])))
        else:
            ops.append(("delete", *random_range(rng)))
    return ops


def check_reads(rng: random.Random, store: KeyValueStore, model: Model) -> None:
    assert (store.revision, store.compact_revision) == (model.revision, model.compact_revision)
    assert len(store) == len(model.states[-1])
    for _ in range(3):
        key, range_end = random_range(rng)
        revision = rng.choice([0, rng.randint(max(1, model.compact_revision), model.revision)])
        expected = model.range(key, range_end, revision)
        limit = rng.choice([0, 0, 1, 2])
        result = store.range(key, range_end, revision=revision, limit=limit)
        assert result.kvs == (expected[:limit] if limit else expected), (key, range_end, revision, limit)
        assert result.count == len(expected) == store.count(key, range_end, revision=revision)
        assert result.revision == model.revision
    key, range_end = random_range(rng)
    if rng.random() < 0.3:
        key, range_end = b"", b""
    start = rng.randint(max(1, model.compact_revision), model.revision + 1)
    assert store.events(start, key, range_end) == model.events(start, key, range_end), (start, key, range_end)


def check_errors(store: KeyValueStore, model: Model) -> None:
    with pytest.raises(FutureRevisionError):
        store.range(b"a", revision=model.revision + 1)
    if model.compact_revision > 1:
        with pytest.raises(CompactedError):
            store.range(b"a", b"\0", revision=model.compact_revision - 1)
        with pytest.raises(CompactedError):
            store.events(model.compact_revision - 1)


def apply_changes(bucket: dict[bytes, bytes], store: KeyValueStore) -> None:
    for key, record in store.take_changes():
        if record is None:
            del bucket[key]
        else:
            bucket[key] = record


@pytest.mark.parametrize("seed", range(12))
def test_random_operations_match_the_model(seed: int) -> None:
    rng = random.Random(seed)
    store, model = KeyValueStore(), Model()
    bucket: dict[bytes, bytes] = {}
    for step in range(250):
        roll = rng.random()
        if roll < 0.08 and model.revision > model.compact_revision:
            revision = rng.randint(model.compact_revision + 1, model.revision)
            store.compact(revision)
            model.compact_revision = revision
        elif roll < 0.12:
            # A restart: the store comes back from its backend alone.
            apply_changes(bucket, store)
            restored = KeyValueStore.restore(sorted(bucket.items()), store.compact_revision)
            assert restored.hash_kv() == store.hash_kv(), f"seed {seed} step {step}"
            assert restored.retained_versions == store.retained_versions == len(bucket)
            store = restored
        else:
            ops = random_ops(rng)
            txn = store.write()
            for op in ops:
                if op[0] == "put":
                    txn.put(op[1], op[2], op[3])
                else:
                    txn.delete_range(op[1], op[2])
            assert txn.end() == model.txn(ops), f"seed {seed} step {step}: {ops}"
        check_reads(rng, store, model)
        check_errors(store, model)
        apply_changes(bucket, store)

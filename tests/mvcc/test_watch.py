"""The watch hub (flotilla.mvcc.watch) against an in-memory history, as etcd's watchable store behaves."""

from __future__ import annotations

import random
import time

import pytest

from flotilla.mvcc.errors import CompactedError
from flotilla.mvcc.types import Event, EventType, KeyValue
from flotilla.mvcc.watch import HistorySource, Watcher, WatchHub

PUT, DELETE = EventType.PUT, EventType.DELETE


def _in_range(key: bytes, start: bytes, end: bytes) -> bool:
    if not end:
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


class FakeHistory:
    """An in-memory twin of the KeyValueStore's history. ``events`` cuts at ``limit`` even inside a
    revision (the store may avoid that; the hub must not depend on it)."""

    def __init__(self) -> None:
        self.revision = 1
        self.compact_revision = 0
        self.log: list[Event] = []
        self.live: dict[bytes, KeyValue] = {}
        self.queries = 0

    def write(self, *changes: tuple[bytes, bytes | None]) -> list[Event]:
        """One txn: ``(key, value)`` puts, ``(key, None)`` deletes. Returns its events, not yet notified."""
        revision = self.revision + 1
        events = []
        for key, value in changes:
            prev = self.live.get(key)
            if value is None:
                assert prev is not None
                del self.live[key]
                events.append(Event(DELETE, KeyValue(key, 0, revision, 0), prev))
            else:
                create = prev.create_revision if prev else revision
                kv = KeyValue(key, create, revision, prev.version + 1 if prev else 1, value)
                self.live[key] = kv
                events.append(Event(PUT, kv, prev))
        self.revision = revision
        self.log.extend(events)
        return events

    def compact(self, revision: int) -> None:
        self.compact_revision = revision
        self.log = [e for e in self.log if e.kv.mod_revision >= revision]

    def events(self, start_revision, key=b"", range_end=b"", *, end_revision=0, limit=0):
        self.queries += 1
        if start_revision < self.compact_revision:
            raise CompactedError(start_revision, self.compact_revision)
        found = [
            e
            for e in self.log
            if e.kv.mod_revision >= start_revision
            and (not end_revision or e.kv.mod_revision <= end_revision)
            and _in_range(e.kv.key, key, range_end)
        ]
        return found[:limit] if limit else found


def revs(deliveries, watcher: Watcher) -> list[tuple[int, bytes]]:
    return [(e.kv.mod_revision, e.kv.key) for w, evs in deliveries if w is watcher for e in evs]


def test_fake_history_is_a_history_source() -> None:
    source: HistorySource = FakeHistory()
    assert source.revision == 1


# --- routing ------------------------------------------------------------------------------------------
def test_single_key_range_prefix_and_from_key() -> None:
    history = FakeHistory()
    hub = WatchHub(history)
    one = hub.add(b"b")
    span = hub.add(b"a", b"c")
    prefix = hub.add(b"foo", b"fop")
    from_key = hub.add(b"c", b"\0")
    for key in (b"a", b"b", b"c", b"foo/x", b"fop"):
        got = hub.notify(history.write((key, b"v")))
        delivered = {id(w) for w, _ in got}
        assert (id(one) in delivered) == (key == b"b")
        assert (id(span) in delivered) == (key in (b"a", b"b"))
        assert (id(prefix) in delivered) == (key == b"foo/x")
        assert (id(from_key) in delivered) == (key >= b"c")


def test_one_delivery_per_watcher_per_txn_in_event_order() -> None:
    history = FakeHistory()
    hub = WatchHub(history)
    watcher = hub.add(b"k", b"l")
    got = hub.notify(history.write((b"k2", b"1"), (b"x", b"2"), (b"k1", b"3")))
    assert [(w, [e.kv.key for e in evs]) for w, evs in got] == [(watcher, [b"k2", b"k1"])]


def test_filters_drop_event_types_and_empty_deliveries() -> None:
    history = FakeHistory()
    hub = WatchHub(history)
    no_put = hub.add(b"k", filters=frozenset({PUT}))
    no_delete = hub.add(b"k", filters=frozenset({DELETE}))
    got = hub.notify(history.write((b"k", b"v")))
    assert [w for w, _ in got] == [no_delete]  # nothing at all for no_put: etcd sends nothing
    got = hub.notify(history.write((b"k", None)))
    assert [(w, [e.type for e in evs]) for w, evs in got] == [(no_put, [DELETE])]


def test_prev_kv_is_stripped_unless_asked() -> None:
    history = FakeHistory()
    hub = WatchHub(history)
    history.write((b"k", b"old"))
    plain, with_prev = hub.add(b"k"), hub.add(b"k", prev_kv=True)
    got = dict(hub.notify(history.write((b"k", b"new"))))
    assert got[plain][0].prev_kv is None and got[plain][0].kv.value == b"new"
    assert got[with_prev][0].prev_kv.value == b"old"


def test_watchers_hash_by_identity() -> None:
    hub = WatchHub(FakeHistory())
    a, b = hub.add(b"k"), hub.add(b"k")
    assert a != b and len({a, b}) == 2 and len(hub) == 2


# --- start revisions ------------------------------------------------------------------------------------
def test_start_zero_waits_for_new_changes() -> None:
    history = FakeHistory()
    history.write((b"k", b"1"))
    hub = WatchHub(history)
    watcher = hub.add(b"k")
    assert watcher.synced and watcher.next_revision == history.revision + 1
    assert revs(hub.notify(history.write((b"k", b"2"))), watcher) == [(3, b"k")]


def test_start_in_the_future_waits_until_then() -> None:
    history = FakeHistory()
    hub = WatchHub(history)
    watcher = hub.add(b"k", start_revision=4)
    assert watcher.synced
    for value in (b"2", b"3", b"4", b"5"):
        got = hub.notify(history.write((b"k", value)))
        assert revs(got, watcher) == ([] if history.revision < 4 else [(history.revision, b"k")])


def test_start_in_the_past_catches_up_from_history() -> None:
    history = FakeHistory()
    for i in range(5):
        history.write((b"k", b"%d" % i))  # revisions 2..6
    hub = WatchHub(history)
    watcher = hub.add(b"k", start_revision=4)
    assert not watcher.synced and hub.unsynced_count() == 1
    assert revs(hub.sync(), watcher) == [(4, b"k"), (5, b"k"), (6, b"k")]
    assert watcher.synced and hub.unsynced_count() == 0
    assert revs(hub.notify(history.write((b"k", b"x"))), watcher) == [(7, b"k")]


def test_no_duplicate_when_catch_up_passes_a_write_not_yet_notified() -> None:
    # The classic bug: the write is in history when the watcher catches up, then notify comes for it.
    history = FakeHistory()
    history.write((b"k", b"1"))
    hub = WatchHub(history)
    watcher = hub.add(b"k", start_revision=2)
    pending = history.write((b"k", b"2"))  # committed at revision 3, notify not called yet
    assert revs(hub.sync(), watcher) == [(2, b"k"), (3, b"k")]
    assert hub.notify(pending) == []


def test_no_loss_when_a_write_is_notified_while_catching_up() -> None:
    history = FakeHistory()
    history.write((b"k", b"1"))
    hub = WatchHub(history)
    watcher = hub.add(b"k", start_revision=2)
    assert hub.notify(history.write((b"k", b"2"))) == []  # unsynced: history will give it
    assert revs(hub.sync(), watcher) == [(2, b"k"), (3, b"k")]


def test_start_zero_skips_a_committed_write_notified_late() -> None:
    history = FakeHistory()
    hub = WatchHub(history)
    pending = history.write((b"k", b"1"))
    hub.add(b"k")  # "from now": now is revision 2, which is committed
    assert hub.notify(pending) == []


# --- batches -------------------------------------------------------------------------------------------
def test_sync_batches_whole_revisions() -> None:
    history = FakeHistory()
    for i in range(4):
        history.write((b"a%d" % i, b"v"), (b"b%d" % i, b"v"))  # two events per revision
    hub = WatchHub(history)
    watcher = hub.add(b"a", b"c", start_revision=2)
    batches = []
    while hub.unsynced_count():
        batches.append([e.kv.mod_revision for _, evs in hub.sync(max_events=3) for e in evs])
    assert batches == [[2, 2], [3, 3], [4, 4], [5, 5]]  # the history's cut inside rev 3 is not used
    assert watcher.synced


def test_a_revision_larger_than_the_budget_is_delivered_whole() -> None:
    history = FakeHistory()
    history.write(*[(b"k%d" % i, b"v") for i in range(5)])
    history.write((b"k0", b"w"))
    hub = WatchHub(history)
    hub.add(b"k", b"l", start_revision=1)
    first = hub.sync(max_events=2)
    assert [e.kv.mod_revision for _, evs in first for e in evs] == [2] * 5
    assert [e.kv.mod_revision for _, evs in hub.sync(max_events=2) for e in evs] == [3]


def test_sync_is_fair_between_watchers() -> None:
    history = FakeHistory()
    for i in range(20):
        history.write((b"k", b"%d" % i))
    hub = WatchHub(history)
    far = hub.add(b"k", start_revision=2)
    near = hub.add(b"k", start_revision=20)
    hub.sync(max_events=5, max_watchers=1)  # only `far`, which is not caught up and goes to the back
    assert not far.synced
    hub.sync(max_events=5, max_watchers=1)
    assert near.synced


# --- compaction ---------------------------------------------------------------------------------------
def test_start_below_compaction_is_compacted_at_once() -> None:
    history = FakeHistory()
    for i in range(5):
        history.write((b"k", b"%d" % i))
    history.compact(4)
    hub = WatchHub(history)
    watcher = hub.add(b"k", start_revision=3)
    assert watcher.compacted and watcher.compact_revision == 4 and not watcher.active
    assert len(hub) == 0
    at_compaction = hub.add(b"k", start_revision=4)  # the compaction revision itself is still readable
    assert not at_compaction.compacted
    assert revs(hub.sync(), at_compaction) == [(4, b"k"), (5, b"k"), (6, b"k")]


def test_unsynced_watcher_overtaken_by_compaction_is_cancelled_once() -> None:
    history = FakeHistory()
    for i in range(5):
        history.write((b"k", b"%d" % i))
    hub = WatchHub(history)
    watcher = hub.add(b"k", start_revision=2)
    history.compact(5)
    assert hub.sync() == [(watcher, [])]
    assert watcher.compacted and watcher.compact_revision == 5 and not watcher.active
    assert hub.sync() == [] and len(hub) == 0


# --- cancel, desync -----------------------------------------------------------------------------------
def test_cancel_synced_and_unsynced() -> None:
    history = FakeHistory()
    history.write((b"k", b"1"))
    hub = WatchHub(history)
    synced, unsynced = hub.add(b"k"), hub.add(b"k", b"l", start_revision=2)
    hub.cancel(synced)
    hub.cancel(unsynced)
    hub.cancel(synced)  # idempotent
    assert len(hub) == 0 and hub.unsynced_count() == 0 and not synced.active
    assert hub.notify(history.write((b"k", b"2"))) == [] and hub.sync() == []


def test_desync_then_resync_without_loss() -> None:
    history = FakeHistory()
    hub = WatchHub(history)
    watcher = hub.add(b"k")
    assert revs(hub.notify(history.write((b"k", b"1"))), watcher) == [(2, b"k")]
    hub.desync(watcher)
    assert not watcher.synced and hub.synced_watchers() == []
    assert hub.notify(history.write((b"k", b"2"))) == []
    assert revs(hub.sync(), watcher) == [(3, b"k")]
    assert watcher.synced
    assert revs(hub.notify(history.write((b"k", b"3"))), watcher) == [(4, b"k")]


def test_desync_with_resume_revision_redelivers_an_undelivered_batch() -> None:
    history = FakeHistory()
    hub = WatchHub(history)
    watcher = hub.add(b"k")
    got = hub.notify(history.write((b"k", b"1")))
    hub.desync(watcher, resume_revision=got[0][1][0].kv.mod_revision)  # the member could not push it
    assert revs(hub.sync(), watcher) == [(2, b"k")]


def test_desync_of_a_quiet_watcher_does_not_resume_from_compacted_history() -> None:
    # A synced watcher whose key saw no writes keeps an old next_revision; it has nevertheless seen
    # everything up to the last notified write.
    history = FakeHistory()
    hub = WatchHub(history)
    quiet = hub.add(b"quiet")
    for i in range(10):
        hub.notify(history.write((b"busy", b"%d" % i)))
    history.compact(history.revision)
    hub.desync(quiet)
    assert hub.sync() == [] and quiet.synced and not quiet.compacted


def test_desync_during_delivery_of_the_same_notify() -> None:
    # The member desyncs every watcher of a slow stream while it still walks notify's deliveries.
    history = FakeHistory()
    hub = WatchHub(history)
    a, b = hub.add(b"k"), hub.add(b"k")
    delivered = []
    for watcher, evs in hub.notify(history.write((b"k", b"1"))):
        delivered.extend((watcher, e.kv.mod_revision) for e in evs)
        hub.desync(a)
        hub.desync(b)
    assert delivered == [(a, 2), (b, 2)]
    assert hub.sync() == []  # nothing delivered twice
    assert a.synced and b.synced


def test_synced_watchers_and_counts() -> None:
    history = FakeHistory()
    history.write((b"k", b"1"))
    hub = WatchHub(history)
    one, span = hub.add(b"k"), hub.add(b"a", b"z")
    behind = hub.add(b"k", start_revision=2)
    assert hub.synced_watchers() == [one, span]
    assert hub.unsynced_count() == 1 and len(hub) == 3
    hub.sync()
    assert set(hub.synced_watchers()) == {one, span, behind}


# --- properties and performance -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_random_interleavings_deliver_exactly_the_history(seed: int) -> None:
    """Whatever the order of writes, late notifies, syncs, desyncs and compactions, each watcher receives
    exactly the history of its range from its start, in order, once — or is cancelled by compaction."""
    rng = random.Random(seed)
    history = FakeHistory()
    hub = WatchHub(history)
    keys = [b"a", b"b", b"c", b"d"]
    specs = [(b"a", b""), (b"b", b"d"), (b"a", b"\0"), (b"c", b"")]
    received: dict[Watcher, list[Event]] = {}
    starts: dict[Watcher, int] = {}
    pending: list[list[Event]] = []
    everything: list[Event] = []  # the history before any compaction

    def deliver(deliveries) -> None:
        for watcher, evs in deliveries:
            received[watcher].extend(evs)
            if rng.random() < 0.1:
                hub.desync(watcher)

    for _ in range(300):
        action = rng.random()
        if action < 0.4:
            key = rng.choice(keys)
            change = (key, None) if key in history.live and rng.random() < 0.3 else (key, b"v")
            pending.append(history.write(change))
            everything.extend(pending[-1])
        elif action < 0.6 and pending:
            deliver(hub.notify(pending.pop(0)))
        elif action < 0.75:
            deliver(hub.sync(max_events=rng.randint(1, 4)))
        elif action < 0.85:
            key, end = rng.choice(specs)
            start = rng.choice([0, rng.randint(1, history.revision + 3)])
            watcher = hub.add(key, end, start, prev_kv=True)
            received[watcher] = []
            starts[watcher] = start if start > 0 else history.revision + 1
        elif action < 0.87 and history.revision > 20:
            history.compact(history.revision - 10)
    for events in pending:
        deliver(hub.notify(events))
    while hub.unsynced_count():
        deliver(hub.sync())
    full = FakeHistory()
    full.log = everything
    compacted = 0
    for watcher, got in received.items():
        if watcher.compacted:
            compacted += 1
            continue
        assert got == full.events(starts[watcher], watcher.key, watcher.range_end), watcher
    assert compacted < len(received)


def test_many_watchers_notify_touches_only_matching_ones() -> None:
    history = FakeHistory()
    hub = WatchHub(history)
    watchers = [hub.add(b"key%05d" % i) for i in range(20_000)]
    ranged = [hub.add(b"r%03d" % i, b"r%03d\xff" % i) for i in range(50)]
    crowd = [hub.add(b"hot") for _ in range(2_000)]
    started = time.perf_counter()
    for i in range(2_000):
        got = hub.notify(history.write((b"key%05d" % (i * 7), b"v")))
        assert [w for w, _ in got] == [watchers[i * 7]]
    hot = hub.notify(history.write((b"hot", b"v")))
    elapsed = time.perf_counter() - started
    assert len(hot) == len(crowd) and len(hub) == 20_000 + 50 + 2_000
    assert elapsed < 1.5, f"2,001 notifies over {len(hub)} watchers took {elapsed:.2f} s"
    assert ranged  # scanned on every write; 50 of them stay cheap

"""MemoryStorage, the in-memory twin of the durable log raft reads (etcd's MemoryStorage semantics).

Indexes are raft log indexes. A storage holds a snapshot (the compaction point) and the entries after it;
reads below the compaction point are CompactedError, reads past the last entry UnavailableError.
"""

from __future__ import annotations

import pytest

from flotilla.raft import (
    CompactedError,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    Snapshot,
    SnapshotOutOfDateError,
    UnavailableError,
    bootstrap_snapshot,
)

VOTERS = ConfState(frozenset({1, 2, 3}))


def storage_after(snapshot_index: int, snapshot_term: int, terms: list[int]) -> MemoryStorage:
    """A storage whose snapshot is at (snapshot_index, snapshot_term), then entries of ``terms``."""
    storage = MemoryStorage()
    storage.apply_snapshot(Snapshot(snapshot_index, snapshot_term, VOTERS))
    storage.append([Entry(t, i) for i, t in enumerate(terms, snapshot_index + 1)])
    return storage


def payload(index: int, term: int, size: int) -> Entry:
    return Entry(term, index, data=b"x" * size)


def test_an_empty_storage_holds_nothing() -> None:
    storage = MemoryStorage()
    assert (storage.first_index(), storage.last_index()) == (1, 0)
    assert storage.term(0) == 0  # the position before the first entry
    assert storage.entries(1, 1) == []
    assert storage.initial_state() == (HardState(), ConfState())
    assert storage.snapshot().is_empty()


def test_a_founding_member_starts_from_the_bootstrap_snapshot() -> None:
    storage = MemoryStorage()
    storage.apply_snapshot(bootstrap_snapshot({1, 2, 3}, learners={4}))
    assert (storage.first_index(), storage.last_index()) == (2, 1)
    assert storage.term(1) == 1
    assert storage.initial_state()[1] == ConfState(frozenset({1, 2, 3}), frozenset({4}))
    assert storage.snapshot() == Snapshot(1, 1, ConfState(frozenset({1, 2, 3}), frozenset({4})))


def test_hard_state_round_trips() -> None:
    storage = MemoryStorage()
    storage.set_hard_state(HardState(term=5, vote=2, commit=0))
    assert storage.initial_state()[0] == HardState(5, 2, 0)


class TestReads:
    """Snapshot at 3 (term 3), entries 4, 5, 6 of terms 4, 5, 5."""

    @pytest.fixture
    def storage(self) -> MemoryStorage:
        return storage_after(3, 3, [4, 5, 5])

    def test_bounds(self, storage: MemoryStorage) -> None:
        assert (storage.first_index(), storage.last_index()) == (4, 6)

    @pytest.mark.parametrize(("index", "term"), [(3, 3), (4, 4), (5, 5), (6, 5)])
    def test_term_is_known_from_the_compaction_point_to_the_last_entry(
        self, storage: MemoryStorage, index: int, term: int
    ) -> None:
        assert storage.term(index) == term

    def test_term_below_the_compaction_point_is_compacted(self, storage: MemoryStorage) -> None:
        with pytest.raises(CompactedError):
            storage.term(2)

    def test_term_past_the_last_entry_is_unavailable(self, storage: MemoryStorage) -> None:
        with pytest.raises(UnavailableError):
            storage.term(7)

    def test_entries_is_half_open(self, storage: MemoryStorage) -> None:
        assert storage.entries(4, 7) == [Entry(4, 4), Entry(5, 5), Entry(5, 6)]
        assert storage.entries(5, 6) == [Entry(5, 5)]
        assert storage.entries(5, 5) == []

    @pytest.mark.parametrize("lo", [2, 3])  # the compaction point itself has no entry to return
    def test_entries_at_or_below_the_compaction_point_are_compacted(
        self, storage: MemoryStorage, lo: int
    ) -> None:
        with pytest.raises(CompactedError):
            storage.entries(lo, 6)

    def test_entries_past_the_last_are_unavailable(self, storage: MemoryStorage) -> None:
        with pytest.raises(UnavailableError):
            storage.entries(4, 8)


class TestByteLimit:
    """Each entry is budgeted as its data plus 16 bytes of header; at least one entry is returned."""

    @pytest.fixture
    def storage(self) -> MemoryStorage:
        storage = MemoryStorage()
        storage.append([payload(i, 1, 10) for i in range(1, 6)])  # 26 bytes each
        return storage

    @pytest.mark.parametrize(
        ("max_bytes", "count"),
        [(None, 5), (0, 1), (25, 1), (26, 1), (51, 1), (52, 2), (77, 2), (78, 3), (26 * 5, 5), (10_000, 5)],
    )
    def test_limit(self, storage: MemoryStorage, max_bytes: int | None, count: int) -> None:
        assert [e.index for e in storage.entries(1, 6, max_bytes)] == list(range(1, 1 + count))


class TestAppend:
    def test_append_extends_the_log(self) -> None:
        storage = storage_after(3, 3, [4])
        storage.append([Entry(4, 5), Entry(4, 6)])
        assert storage.entries(4, 7) == [Entry(4, 4), Entry(4, 5), Entry(4, 6)]

    def test_append_overwrites_the_suffix_it_conflicts_with(self) -> None:
        # A new leader's entries replace everything from their first index on, even entries past
        # their last (raft §5.3: delete the existing entry and all that follow it).
        storage = storage_after(3, 3, [3, 3, 3, 3])
        storage.append([Entry(5, 5)])
        assert storage.last_index() == 5
        assert storage.entries(4, 6) == [Entry(3, 4), Entry(5, 5)]

    def test_append_at_the_first_index_replaces_every_entry(self) -> None:
        storage = storage_after(3, 3, [3, 3])
        storage.append([Entry(6, 4)])
        assert storage.entries(4, 5) == [Entry(6, 4)]
        assert storage.last_index() == 4

    def test_entries_already_in_the_snapshot_are_ignored(self) -> None:
        storage = storage_after(3, 3, [4])
        storage.append([Entry(2, 2), Entry(3, 3)])
        assert storage.entries(4, 5) == [Entry(4, 4)]
        assert (storage.first_index(), storage.last_index()) == (4, 4)

    def test_the_part_already_in_the_snapshot_is_trimmed(self) -> None:
        storage = storage_after(3, 3, [4])
        storage.append([Entry(3, 3), Entry(5, 4), Entry(5, 5)])
        assert storage.entries(4, 6) == [Entry(5, 4), Entry(5, 5)]
        assert storage.term(3) == 3

    def test_a_gap_is_a_bug(self) -> None:
        storage = storage_after(3, 3, [4])
        with pytest.raises(AssertionError):
            storage.append([Entry(4, 6)])

    def test_appending_nothing_changes_nothing(self) -> None:
        storage = storage_after(3, 3, [4])
        storage.append([])
        assert storage.last_index() == 4


class TestCompaction:
    def test_compact_discards_entries_up_to_and_including_the_index(self) -> None:
        storage = storage_after(3, 3, [4, 5, 5])
        storage.compact(5)
        assert (storage.first_index(), storage.last_index()) == (6, 6)
        assert storage.term(5) == 5  # the new compaction point keeps its term
        with pytest.raises(CompactedError):
            storage.entries(5, 7)
        assert storage.entries(6, 7) == [Entry(5, 6)]

    @pytest.mark.parametrize("index", [2, 3])
    def test_compacting_at_or_below_the_compaction_point_is_compacted(self, index: int) -> None:
        storage = storage_after(3, 3, [4, 5])
        with pytest.raises(CompactedError):
            storage.compact(index)

    def test_compacting_past_the_last_entry_is_unavailable(self) -> None:
        storage = storage_after(3, 3, [4, 5])
        with pytest.raises(UnavailableError):
            storage.compact(6)

    def test_create_snapshot_records_the_term_and_membership_at_the_index(self) -> None:
        storage = storage_after(3, 3, [4, 5, 5])
        members = ConfState(frozenset({1, 2}), frozenset({3}))
        snapshot = storage.create_snapshot(5, members, b"state")
        assert snapshot == Snapshot(5, 5, members, b"state")
        assert storage.snapshot() == snapshot
        # Creating a snapshot does not compact: that is a separate decision.
        assert (storage.first_index(), storage.last_index()) == (4, 6)
        assert storage.initial_state()[1] == members

    @pytest.mark.parametrize("index", [2, 3])
    def test_create_snapshot_not_newer_than_the_current_one_is_out_of_date(self, index: int) -> None:
        storage = storage_after(3, 3, [4])
        with pytest.raises(SnapshotOutOfDateError):
            storage.create_snapshot(index, VOTERS, b"")

    def test_create_snapshot_past_the_last_entry_is_unavailable(self) -> None:
        storage = storage_after(3, 3, [4])
        with pytest.raises(UnavailableError):
            storage.create_snapshot(5, VOTERS, b"")


class TestApplySnapshot:
    def test_apply_snapshot_replaces_the_whole_log(self) -> None:
        storage = storage_after(3, 3, [4, 5, 5])
        incoming = Snapshot(10, 7, ConfState(frozenset({1, 2, 3, 4})), b"data")
        storage.apply_snapshot(incoming)
        assert (storage.first_index(), storage.last_index()) == (11, 10)
        assert storage.term(10) == 7
        assert storage.snapshot() == incoming
        assert storage.initial_state()[1] == incoming.conf_state
        with pytest.raises(CompactedError):
            storage.term(5)

    def test_apply_snapshot_inside_the_log_still_replaces_it(self) -> None:
        # An InstallSnapshot is authoritative: entries after it are dropped too (etcd does the same).
        storage = storage_after(3, 3, [4, 5, 5])
        storage.apply_snapshot(Snapshot(5, 5, VOTERS))
        assert (storage.first_index(), storage.last_index()) == (6, 5)

    @pytest.mark.parametrize("index", [2, 3])
    def test_an_older_or_equal_snapshot_is_out_of_date(self, index: int) -> None:
        storage = storage_after(3, 3, [4])
        with pytest.raises(SnapshotOutOfDateError):
            storage.apply_snapshot(Snapshot(index, 3, VOTERS))
        assert storage.snapshot().index == 3

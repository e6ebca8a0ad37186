"""RaftLog: storage (persisted) plus the unstable tail, with the commit and apply cursors.

The numbered rules are raft §5.3's AppendEntries receiver steps and §5.4.2's commitment rule.
"""

from __future__ import annotations

import pytest

from flotilla.raft import CompactedError, ConfState, Entry, MemoryStorage, Snapshot, UnavailableError
from flotilla.raft.log import RaftLog

VOTERS = ConfState(frozenset({1, 2, 3}))


def ents(*pairs: tuple[int, int]) -> list[Entry]:
    """Entries from (index, term) pairs."""
    return [Entry(term, index) for index, term in pairs]


def stored_log(terms: list[int], snapshot: tuple[int, int] = (0, 0)) -> RaftLog:
    """A log whose storage holds a snapshot at (index, term) then entries of ``terms``."""
    storage = MemoryStorage()
    index, term = snapshot
    if index:
        storage.apply_snapshot(Snapshot(index, term, VOTERS))
    storage.append([Entry(t, i) for i, t in enumerate(terms, index + 1)])
    return RaftLog(storage)


def persist(log: RaftLog) -> None:
    """What the application does with a Ready's entries, then advance()."""
    unstable = log.unstable_entries()
    if unstable:
        log.storage.append(unstable)  # type: ignore[attr-defined]
        log.stable_to(unstable[-1].index, unstable[-1].term)


def terms_of(log: RaftLog) -> list[tuple[int, int]]:
    return [(e.index, e.term) for e in log.entries(log.first_index())]


def test_a_new_log_starts_committed_and_applied_at_its_snapshot() -> None:
    log = stored_log([4, 4], snapshot=(5, 3))
    assert (log.first_index(), log.last_index(), log.last_term()) == (6, 7, 4)
    assert (log.committed, log.applied) == (5, 5)
    assert not log.has_next_committed_entries()


class TestMaybeAppend:
    """A follower's handling of APP(index, log_term, commit, entries); the log holds 1/1 2/2 3/3."""

    @pytest.fixture
    def log(self) -> RaftLog:
        log = stored_log([1, 2, 3])
        log.commit_to(1)
        return log

    @pytest.mark.parametrize(
        ("index", "log_term"),
        [
            (3, 2),  # rule 2: the entry at index exists but its term differs
            (4, 3),  # rule 2: no entry at index at all
        ],
    )
    def test_reject_when_the_previous_entry_does_not_match(
        self, log: RaftLog, index: int, log_term: int
    ) -> None:
        assert log.maybe_append(index, log_term, 3, ents((index + 1, 4))) is None
        assert terms_of(log) == [(1, 1), (2, 2), (3, 3)]
        assert log.committed == 1  # a rejected APP moves nothing, not even commit

    def test_accept_an_empty_append_and_take_its_commit(self, log: RaftLog) -> None:
        assert log.maybe_append(3, 3, 3, []) == 3
        assert log.committed == 3

    def test_commit_is_capped_at_the_last_new_entry(self, log: RaftLog) -> None:
        # Rule 5: commit = min(leaderCommit, index of last new entry). The entries after index 2 are
        # not known to match the leader's, so they must not be committed on its word.
        assert log.maybe_append(2, 2, 3, []) == 2
        assert log.committed == 2

    def test_commit_never_moves_backwards(self, log: RaftLog) -> None:
        log.commit_to(3)
        assert log.maybe_append(2, 2, 1, []) == 2
        assert log.committed == 3

    def test_append_new_entries(self, log: RaftLog) -> None:
        assert log.maybe_append(3, 3, 4, ents((4, 3), (5, 3))) == 5
        assert terms_of(log) == [(1, 1), (2, 2), (3, 3), (4, 3), (5, 3)]
        assert log.committed == 4

    def test_a_conflicting_entry_and_everything_after_it_are_replaced(self, log: RaftLog) -> None:
        # Rule 3: an existing entry that conflicts with a new one (same index, different term) is
        # deleted with all that follow it; then rule 4 appends the new entries.
        assert log.maybe_append(1, 1, 1, ents((2, 4))) == 2
        assert terms_of(log) == [(1, 1), (2, 4)]
        assert log.last_index() == 2

    def test_matching_entries_do_not_truncate_a_longer_log(self, log: RaftLog) -> None:
        # A delayed APP carrying a prefix of what we have: truncating would lose entries the leader
        # may already count as replicated here.
        assert log.maybe_append(1, 1, 1, ents((2, 2))) == 2
        assert terms_of(log) == [(1, 1), (2, 2), (3, 3)]

    def test_only_the_new_suffix_is_appended(self, log: RaftLog) -> None:
        persist(log)
        assert log.maybe_append(1, 1, 1, ents((2, 2), (3, 3), (4, 3))) == 4
        assert log.unstable_entries() == ents((4, 3))

    def test_conflicting_with_a_committed_entry_is_a_bug(self, log: RaftLog) -> None:
        with pytest.raises(AssertionError):
            log.maybe_append(0, 0, 1, ents((1, 5)))


@pytest.mark.parametrize(
    ("incoming", "conflict"),
    [
        ([], 0),
        ([(1, 1), (2, 2), (3, 3)], 0),  # all match
        ([(2, 2), (3, 3)], 0),
        ([(3, 3)], 0),
        ([(1, 1), (2, 2), (3, 3), (4, 4), (5, 4)], 4),  # matching, then new
        ([(3, 3), (4, 4)], 4),
        ([(1, 4), (2, 4)], 1),  # conflict at the first
        ([(2, 1), (3, 4), (4, 4)], 2),
        ([(3, 1), (4, 2)], 3),
    ],
)
def test_find_conflict(incoming: list[tuple[int, int]], conflict: int) -> None:
    """The first entry that is new or conflicts with ours (0: all of them match)."""
    assert stored_log([1, 2, 3]).find_conflict(ents(*incoming)) == conflict


@pytest.mark.parametrize(
    ("index", "term", "expected"),
    [
        # Log (index/term): 1/1 2/1 3/3 4/3 5/4 6/4 7/6 8/6
        (8, 6, 8),  # our entry at 8 has the same term: it may match
        (8, 5, 6),  # skip our term-6 entries, all newer than term 5
        (8, 4, 6),
        (8, 3, 4),
        (8, 2, 2),
        (8, 1, 2),
        (8, 0, 0),  # nothing has a term <= 0
        (5, 3, 4),
        (4, 9, 4),
        (2, 1, 2),
        (12, 6, 12),  # past our last entry: unknown, assume a possible match
    ],
)
def test_find_conflict_by_term(index: int, term: int, expected: int) -> None:
    """The largest i <= index with term(i) <= term: every entry after it is from a term newer than the
    other log's entry at ``index``, so none can match it; a rejection hint skips them all at once."""
    log = stored_log([1, 1, 3, 3, 4, 4, 6, 6])
    assert log.find_conflict_by_term(index, term) == expected


def test_find_conflict_by_term_stops_at_the_compaction_point() -> None:
    log = stored_log([5, 5], snapshot=(4, 4))
    # term(4) = 4 > 3; below 4 terms are unknown, and an unknown term may match (etcd does the same)
    assert log.find_conflict_by_term(6, 3) == 3
    assert log.find_conflict_by_term(6, 4) == 4


class TestUpToDate:
    """§5.4.1: compare last terms first; with equal last terms the longer log is more up-to-date."""

    @pytest.mark.parametrize(
        ("last_index", "last_term", "expected"),
        [
            (2, 3, True),  # higher last term, shorter log
            (3, 2, True),  # equal term, equal length
            (4, 2, True),  # equal term, longer
            (2, 2, False),  # equal term, shorter
            (9, 1, False),  # lower last term, longer log
        ],
    )
    def test_is_up_to_date(self, last_index: int, last_term: int, expected: bool) -> None:
        log = stored_log([1, 2, 2])  # last entry: index 3, term 2
        assert log.is_up_to_date(last_index, last_term) is expected


class TestMaybeCommit:
    def test_commit_an_entry_of_the_given_term(self) -> None:
        log = stored_log([1, 2, 2])
        assert log.maybe_commit(3, 2)
        assert log.committed == 3

    def test_never_commit_by_counting_an_entry_of_another_term(self) -> None:
        # §5.4.2: a leader of term 3 finding entry 2 (term 2) on a majority must not commit it.
        log = stored_log([1, 2, 3])
        assert not log.maybe_commit(2, 3)
        assert log.committed == 0
        assert log.maybe_commit(3, 3)
        assert log.committed == 3  # committing 3 commits everything before it

    def test_commit_never_moves_backwards(self) -> None:
        log = stored_log([1, 2, 2])
        log.commit_to(3)
        assert not log.maybe_commit(2, 2)
        assert log.committed == 3

    def test_commit_past_the_last_entry_is_a_bug(self) -> None:
        log = stored_log([1])
        with pytest.raises(AssertionError):
            log.commit_to(2)


class TestUnstable:
    def test_appended_entries_are_unstable_until_persisted(self) -> None:
        log = stored_log([1, 1])
        assert log.append(ents((3, 2), (4, 2))) == 4
        assert log.unstable_entries() == ents((3, 2), (4, 2))
        assert log.stable_last_index() == 2
        log.storage.append(ents((3, 2), (4, 2)))  # type: ignore[attr-defined]
        log.stable_to(4, 2)
        assert log.unstable_entries() == []
        assert log.stable_last_index() == 4
        assert log.term(4) == 2

    def test_stable_to_a_prefix_keeps_the_rest(self) -> None:
        log = stored_log([1])
        log.append(ents((2, 2), (3, 2), (4, 2)))
        log.storage.append(ents((2, 2), (3, 2)))  # type: ignore[attr-defined]
        log.stable_to(3, 2)
        assert log.unstable_entries() == ents((4, 2))
        assert log.stable_last_index() == 3

    def test_stable_to_ignores_entries_overwritten_since_that_ready(self) -> None:
        # Ready #1 carried 2/2 3/2 4/2; before it was advanced, a new leader replaced 3 and 4. The
        # acknowledgement of 4/2 must not mark the new 3/5 as persisted.
        log = stored_log([1])
        log.append(ents((2, 2), (3, 2), (4, 2)))
        log.append(ents((3, 5)))
        assert log.unstable_entries() == ents((2, 2), (3, 5))
        log.stable_to(4, 2)  # no entry 4 any more
        log.stable_to(3, 2)  # entry 3 has another term now
        assert log.unstable_entries() == ents((2, 2), (3, 5))
        assert log.stable_last_index() == 1

    def test_stable_to_outside_the_unstable_part_is_ignored(self) -> None:
        log = stored_log([1, 1])
        log.append(ents((3, 2)))
        log.stable_to(1, 1)
        log.stable_to(9, 2)
        assert log.unstable_entries() == ents((3, 2))

    def test_overwriting_persisted_entries(self) -> None:
        # A new leader replaces entries that storage already holds: the unstable part restarts at
        # the conflict and reads below it still come from storage.
        log = stored_log([1, 1, 1, 1])
        log.append(ents((3, 4)))
        assert log.unstable_entries() == ents((3, 4))
        assert log.stable_last_index() == 2
        assert terms_of(log) == [(1, 1), (2, 1), (3, 4)]
        assert log.last_index() == 3
        with pytest.raises(UnavailableError):
            log.term(4)  # storage still has a stale 4; the log must not show it

    def test_overwriting_inside_the_unstable_part(self) -> None:
        log = stored_log([1])
        log.append(ents((2, 1), (3, 1), (4, 1)))
        log.append(ents((3, 2), (4, 2), (5, 2)))
        assert terms_of(log) == [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]

    def test_overwriting_a_committed_entry_is_a_bug(self) -> None:
        log = stored_log([1, 1])
        log.commit_to(2)
        with pytest.raises(AssertionError):
            log.append(ents((2, 3)))

    def test_appending_with_a_gap_is_a_bug(self) -> None:
        log = stored_log([1])
        log.append(ents((2, 1)))
        with pytest.raises(AssertionError):
            log.append(ents((5, 1)))


class TestRestore:
    def test_restore_makes_the_snapshot_the_whole_log(self) -> None:
        log = stored_log([1, 1, 2])
        log.append(ents((4, 2)))
        snapshot = Snapshot(10, 4, VOTERS, b"state")
        log.restore(snapshot)
        assert (log.first_index(), log.last_index(), log.last_term()) == (11, 10, 4)
        assert log.committed == 10
        assert log.term(10) == 4
        assert log.unstable_entries() == []
        assert log.snapshot() == snapshot
        assert log.stable_last_index() == 0  # nothing we hold is durable until the snapshot is
        with pytest.raises(CompactedError):
            log.term(3)
        assert not log.has_next_committed_entries()  # the snapshot is applied, not its entries

    def test_entries_after_a_restored_snapshot(self) -> None:
        log = stored_log([1])
        log.restore(Snapshot(10, 4, VOTERS))
        log.append(ents((11, 4), (12, 5)))
        assert terms_of(log) == [(11, 4), (12, 5)]
        assert log.maybe_append(12, 5, 12, []) == 12

    def test_stable_snapshot_to(self) -> None:
        log = stored_log([1])
        snapshot = Snapshot(10, 4, VOTERS)
        log.restore(snapshot)
        log.stable_snapshot_to(9)  # some other snapshot
        assert log.unstable_snapshot == snapshot
        log.storage.apply_snapshot(snapshot)  # type: ignore[attr-defined]
        log.stable_snapshot_to(10)
        assert log.unstable_snapshot is None
        assert (log.first_index(), log.last_index(), log.term(10)) == (11, 10, 4)


class TestEntries:
    """Storage holds 1..3, the unstable part 4..5; every entry is 26 bytes (10 of data + 16)."""

    @pytest.fixture
    def log(self) -> RaftLog:
        storage = MemoryStorage()
        storage.append([Entry(1, i, data=b"0123456789") for i in range(1, 4)])
        log = RaftLog(storage)
        log.append([Entry(2, i, data=b"0123456789") for i in (4, 5)])
        return log

    def indexes(self, entries: list[Entry]) -> list[int]:
        return [e.index for e in entries]

    def test_spanning_storage_and_unstable(self, log: RaftLog) -> None:
        assert self.indexes(log.entries(2)) == [2, 3, 4, 5]
        assert self.indexes(log.entries(2, 5)) == [2, 3, 4]
        assert self.indexes(log.entries(4)) == [4, 5]
        assert self.indexes(log.entries(1, 3)) == [1, 2]

    @pytest.mark.parametrize(
        ("lo", "max_bytes", "expected"),
        [
            (2, 0, [2]),  # at least one entry
            (2, 51, [2]),
            (2, 52, [2, 3]),  # the limit falls exactly at the storage/unstable boundary
            (2, 77, [2, 3]),
            (2, 78, [2, 3, 4]),  # the limit falls inside the unstable part
            (2, 104, [2, 3, 4, 5]),
            (4, 26, [4]),  # unstable only
            (4, 1, [4]),
        ],
    )
    def test_byte_limit(self, log: RaftLog, lo: int, max_bytes: int, expected: list[int]) -> None:
        assert self.indexes(log.entries(lo, None, max_bytes)) == expected

    def test_past_the_last_entry_there_is_nothing(self, log: RaftLog) -> None:
        assert log.entries(6) == []

    def test_below_the_first_index_is_compacted(self) -> None:
        log = stored_log([3, 3], snapshot=(5, 2))
        with pytest.raises(CompactedError):
            log.entries(5)


class TestNextCommittedEntries:
    def test_committed_entries_not_yet_applied_in_order(self) -> None:
        log = stored_log([1, 1, 1, 1])
        log.commit_to(3)
        assert log.has_next_committed_entries()
        assert [e.index for e in log.next_committed_entries()] == [1, 2, 3]
        log.applied_to(3)
        assert not log.has_next_committed_entries()
        assert log.next_committed_entries() == []

    def test_unstable_entries_can_be_committed_too(self) -> None:
        # Allowed by the Ready contract: the same Ready persists them before they are applied.
        log = stored_log([1])
        log.applied_to(0)
        log.append(ents((2, 1), (3, 1)))
        log.commit_to(3)
        assert [e.index for e in log.next_committed_entries()] == [1, 2, 3]

    def test_apply_starts_after_the_snapshot(self) -> None:
        log = stored_log([2, 2], snapshot=(4, 2))
        log.commit_to(6)
        assert [e.index for e in log.next_committed_entries()] == [5, 6]

    def test_limited_by_max_apply_bytes(self) -> None:
        storage = MemoryStorage()
        storage.append([Entry(1, i, data=b"0123456789") for i in range(1, 5)])
        log = RaftLog(storage, max_apply_bytes=52)
        log.commit_to(4)
        assert [e.index for e in log.next_committed_entries()] == [1, 2]
        log.applied_to(2)
        assert [e.index for e in log.next_committed_entries()] == [3, 4]

    @pytest.mark.parametrize("index", [4, -1])
    def test_applying_beyond_commit_or_backwards_is_a_bug(self, index: int) -> None:
        log = stored_log([1, 1, 1, 1])
        log.commit_to(3)
        log.applied_to(2)
        with pytest.raises(AssertionError):
            log.applied_to(index)

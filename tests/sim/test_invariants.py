"""Each safety check trips on the breach it guards against (the Checker alone, no cluster)."""

import pytest

from flotilla.raft import Entry, HardState, MemoryStorage, Role, bootstrap_snapshot
from flotilla.raft.log import RaftLog
from flotilla.sim import Checker, Violation


class FakeRaft:
    """The attributes the Checker reads from a raft member."""

    def __init__(self, term: int, role: Role, entries: list[Entry], commit: int):
        storage = MemoryStorage()
        storage.apply_snapshot(bootstrap_snapshot({1, 2, 3}))
        storage.append(entries)
        self.term, self.role = term, role
        self.log = RaftLog(storage)
        self.log.commit_to(commit)


def test_two_leaders_in_one_term():
    checker = Checker()
    checker.observe(1, 1, FakeRaft(2, Role.LEADER, [], 1), [0, 0, 0, -1])
    with pytest.raises(Violation, match="two leaders in term 2"):
        checker.observe(2, 1, FakeRaft(2, Role.LEADER, [], 1), [0, 0, 0, -1])


def test_term_going_back():
    checker = Checker()
    seen = [0, 0, 0, -1]
    checker.observe(1, 1, FakeRaft(3, Role.FOLLOWER, [], 1), seen)
    with pytest.raises(Violation, match="term went back"):
        checker.observe(1, 1, FakeRaft(2, Role.FOLLOWER, [], 1), seen)


def test_a_committed_entry_that_changes():
    checker = Checker()
    checker.observe(1, 1, FakeRaft(2, Role.FOLLOWER, [Entry(2, 2, data=b"a")], 2), [0, 0, 0, -1])
    with pytest.raises(Violation, match="was committed there before"):
        checker.observe(2, 1, FakeRaft(3, Role.FOLLOWER, [Entry(3, 2, data=b"b")], 2), [0, 0, 0, -1])


def test_leader_missing_a_committed_entry():
    checker = Checker()
    checker.observe(1, 1, FakeRaft(2, Role.FOLLOWER, [Entry(2, 2, data=b"a")], 2), [0, 0, 0, -1])
    with pytest.raises(Violation, match="leader completeness"):
        checker.observe(2, 1, FakeRaft(3, Role.LEADER, [Entry(3, 2)], 1), [0, 0, 0, -1])


def test_log_matching():
    checker = Checker()
    checker.on_persisted(1, [Entry(2, 5, data=b"x")], 2, None)
    with pytest.raises(Violation, match="log matching"):
        checker.on_persisted(2, [Entry(2, 5, data=b"x")], 1, None)


def test_persisted_term_going_back():
    checker = Checker()
    checker.on_persisted(1, [], 0, HardState(5, 1, 10))
    with pytest.raises(Violation, match="went back"):
        checker.on_persisted(1, [], 0, HardState(4, 1, 10))


def test_applying_out_of_order_or_a_different_entry():
    checker = Checker()
    entry = Entry(2, 2, data=b"a")
    checker.observe(1, 1, FakeRaft(2, Role.FOLLOWER, [entry], 2), [0, 0, 0, -1])
    with pytest.raises(Violation, match="right after"):
        checker.on_apply(1, 0, 0, entry)
    with pytest.raises(Violation, match="committed there"):
        checker.on_apply(1, 1, 0, Entry(2, 2, data=b"b"))
    checker.on_apply(1, 1, 0, entry)


def test_stale_read():
    checker = Checker()
    checker.write_acked(b"k", 7)
    required = checker.read_started(b"k")
    checker.read_served(1, b"k", 7, required, 7)
    with pytest.raises(Violation, match="stale read"):
        checker.read_served(2, b"k", 6, required, 9)

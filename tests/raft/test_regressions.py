"""Regression tests for four bugs a review of the raft core found, one story each.

Each docstring says what went wrong and which change prevents it; each test asserts the safe outcome
and fails on the core as it was before that change.
"""

from __future__ import annotations

import random

import pytest
from loopback import MT, Network

from flotilla.raft import (
    NO_LEADER,
    ConfChange,
    ConfChangeType,
    Config,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RawNode,
    Role,
    bootstrap_snapshot,
)

ADD, LEARNER = ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER


def _entries(net: Network, member_id: int) -> list[Entry]:
    raft_log = net[member_id].raft.log
    return raft_log.entries(raft_log.first_index())


def _snapshot_and_compact(net: Network, member_id: int) -> int:
    """The member snapshots its state machine at its applied index and compacts its log there."""
    raft = net[member_id].raft
    applied = raft.log.applied
    net.storages[member_id].create_snapshot(applied, raft.conf_state(), b"")
    net.storages[member_id].compact(applied)
    return applied


def test_a_restart_with_a_lagging_commit_index_does_not_use_a_membership_two_changes_old() -> None:
    """Review bug 1. Member 3 missed two membership changes (add 4, then add 5), then received them
    in one append carrying commit >= both, and crashed while writing that Ready: the entries reached
    its disk, the hard state (the commit index) did not. It restarted knowing neither change to be
    committed, so it used the founding membership {1, 2, 3}: with 2's vote it won an election, although
    entry E, committed by 1, 4 and 5 (a majority of five), was missing from both their logs.

    Fix: ``Raft._commit_settled_conf_changes`` (at start and after an append carrying a change). A
    leader proposes a change only after applying the one before, so every change before the last in
    our log is committed: 3 restarts with "add 4" committed, uses {1, 2, 3, 4}, and 2 and 3 are no
    majority of it."""
    net = Network(voters=(1, 2, 3))
    net.isolate(3)
    net.elect(1)
    for member in (4, 5):
        net[1].propose_conf_change(ConfChange(ADD, member))
        net.stabilize()
        net.add(member)  # joins with an empty log and catches up
        net.run_until(lambda m=member: net[m].raft.log.applied == net[1].raft.log.last_index())
    assert net[1].raft.voters == {1, 2, 3, 4, 5}
    add_4, add_5 = (e.index for e in _entries(net, 1) if e.type == EntryType.CONF_CHANGE)

    # 3 comes back; the leader sends it both changes at once, with the commit index past them.
    net.heal()
    net.tick(1)
    for _ in range(10):
        net.process_ready(1)
        net.deliver(lambda m: m.to == 3)
        if net[3].raft.log.last_index() >= add_5:
            break
        net.process_ready(3)
        net.deliver(lambda m: m.to == 1)
    rd = net[3].ready()
    assert [e.index for e in rd.entries][-2:] == [add_4, add_5]
    assert rd.hard_state is not None and rd.hard_state.commit == add_5
    net.storages[3].append(rd.entries)  # the crash cuts the write short: the hard state is lost
    net.restart(3)

    # Entry E is committed by 1, 4 and 5 while 2 and 3 hear nothing.
    net.isolate(2)
    net.isolate(3)
    net[1].propose(b"E")
    net.stabilize()
    e_index, e_term = net[1].raft.log.last_index(), net[1].raft.term
    assert net[1].raft.log.committed == e_index

    # A partition: 2 and 3 on one side. They hold every entry but E; they must not elect anyone.
    net.heal()
    for member in (1, 4, 5):
        net.isolate(member)
    for _ in range(300):
        net.tick_all()
        net.stabilize()
        for member in (2, 3):
            assert net.role(member) != Role.LEADER, (
                f"member {member} won term {net[member].raft.term} with 2 and 3 alone, without "
                f"committed entry E ({e_index}, term {e_term}) in its log"
            )

    # Healed, everyone ends up with E where it was committed.
    net.heal()
    net.run_until(lambda: all(b"E" in net.applied_data(member) for member in net.nodes))
    for member in net.nodes:
        assert (e_index, e_term) in net.log(member)


def test_a_member_left_as_the_only_voter_reads_only_after_committing_in_its_own_term() -> None:
    """Review bug 2. Leader 2 of voters {1, 2} demoted itself; before applying that, it committed a
    write w with 1's acknowledgement and answered the client, and 1 never heard w was committed. 1,
    now the only voter, won at once and answered a ReadIndex at its own commit index, below w: a
    stale read of an acknowledged write. (That path is closed now: a leader of two voters may not
    remove or demote itself. A sole voter can still start with a commit index below entries a
    predecessor committed, as here, after a restart whose hard state lagged its log.)

    Fix: ``_leader_read_index`` checks ``_committed_in_current_term`` before the single-voter shortcut,
    so the read waits for 1's empty entry of its term, which commits w too (thesis §6.4)."""
    storage = MemoryStorage()
    storage.apply_snapshot(bootstrap_snapshot({1}))
    storage.append([Entry(2, 2, data=b"w")])  # committed by the old membership; 1 does not know it
    storage.set_hard_state(HardState(term=2, vote=2, commit=1))
    node = RawNode(Config(id=1, rng=random.Random(1)), storage)
    node.campaign()  # the only voter: it wins at once
    assert node.is_leader()
    node.read_index(b"after-w")
    read_states = []
    while node.has_ready():
        rd = node.ready()
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        read_states += rd.read_states
        node.advance(rd)
    assert [r.request_ctx for r in read_states] == [b"after-w"]
    assert read_states[0].index >= 2, f"read index {read_states[0].index} misses w at 2"


def test_the_leader_of_two_voters_may_not_remove_or_demote_itself() -> None:
    """Where review bugs 2 and 4 began, and the liveness failure the simulator found after them: a
    leader of voters {1, 2} that removes or demotes itself leaves member 2 to learn of the commit
    from it alone; if 2 does not before 1 goes, 2 still needs 1's vote and never gets it. Transfer
    leadership first, then make the change at the new leader. Removing the other voter is fine, and
    so is removing the leader of three voters (the other two are a majority of the old three)."""
    net = Network(voters=(1, 2))
    net.elect(1)
    for kind in (ConfChangeType.REMOVE_NODE, LEARNER):
        with pytest.raises(ProposalDropped, match="transfer leadership"):
            net[1].propose_conf_change(ConfChange(kind, 1))
    net[1].propose_conf_change(ConfChange(LEARNER, 2))
    net.stabilize()
    assert net[1].raft.voters == {1} and net[2].raft.learners == {2}

    net = Network(voters=(1, 2, 3))
    net.elect(1)
    net[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    net.stabilize()
    assert net[2].raft.voters == {2, 3}


def test_a_learner_that_took_a_snapshot_from_before_its_addition_takes_the_next_one() -> None:
    """Review bug 3. Learner 4 joined with an empty log. Leader 1 sent it a snapshot taken before 4 was
    added (membership {1, 2, 3}), which a fresh member rightly takes, and then crashed. The next leader,
    2, also had only a snapshot from before 4's addition to send, and 4, now knowing a membership
    without itself, rejected it as stale: 2 sent it again on every probe and 4 never caught up.

    Fix: ``Raft._restore`` rejects a snapshot without us only when our own current membership includes
    us; a member that has not yet learned of its own addition takes it."""
    net = Network(voters=(1, 2, 3))
    net.elect(1)
    for i in range(5):
        net[1].propose(b"a%d" % i)
    net.stabilize()
    _snapshot_and_compact(net, 1)
    for i in range(3):
        net[1].propose(b"b%d" % i)
    net.stabilize()
    _snapshot_and_compact(net, 2)  # also from before 4's addition
    net[1].propose_conf_change(ConfChange(LEARNER, 4))
    net.stabilize()
    net.add(4)

    # 1 sends its snapshot to 4, which takes it; then 1 crashes before sending anything more.
    for _ in range(50):
        net.tick(1)
        net.process_all()
        snapshots = net.take(lambda m: m.type == MT.SNAP and m.to == 4)
        if snapshots:
            net.queue.extend(snapshots)
            net.deliver(lambda m: m.type == MT.SNAP and m.to == 4)
            net.process_ready(4)
            break
        net.deliver()
    assert 0 < net.storages[4].snapshot().index < net.storages[2].snapshot().index
    assert 4 not in net[4].raft.conf_state().members()
    net.queue.clear()
    net.isolate(1)

    net[2].campaign()
    net.stabilize()
    assert net.role(2) == Role.LEADER
    for _ in range(100):
        net.tick_all()
        net.stabilize()
        if net[4].raft.log.applied == net[2].raft.log.last_index():
            break
    leader = net[2].raft
    assert net[4].raft.log.applied == leader.log.last_index(), f"4 stalls: {leader.prs[4]}"
    assert net.storages[4].snapshot().index == net.storages[2].snapshot().index
    assert net[4].raft.conf_state() == leader.conf_state() and net[4].raft.learners == {4}


def _same_index_and_term_different_entry(net: Network, a: int, b: int) -> list[tuple[int, int]]:
    """(index, term) pairs at which ``a`` and ``b`` hold different entries of the same term."""
    theirs = {e.index: e for e in _entries(net, b)}
    return [
        (e.index, e.term)
        for e in _entries(net, a)
        if e.index in theirs and theirs[e.index].term == e.term and theirs[e.index] != e
    ]


def test_a_single_voter_sends_nothing_before_its_new_term_and_vote_are_durable() -> None:
    """Review bug 4. A member that is the only voter wins an election inside ``campaign()``, before its
    new term and vote are persisted, and its first Ready put the appends to learners in ``messages``,
    which the application may send before the fsync. If it then crashed before the fsync, it came back
    in the old term, could lead the same term again with a different log, and a learner could hold
    two different entries at one index and term (found with a leader of two voters demoting itself,
    which is now refused; the rule below closes it for every way of becoming a lone voter).

    Fix: ``RawNode.ready()`` moves every message into ``messages_after_persist`` when the Ready changes
    the term or the vote, so nothing of the new term leaves before the term is durable."""
    storage = MemoryStorage()
    storage.apply_snapshot(bootstrap_snapshot({1}, {2}))
    node = RawNode(Config(id=1, rng=random.Random(1)), storage)
    node.campaign()
    assert node.is_leader()
    rd = node.ready()
    assert rd.hard_state is not None and (rd.hard_state.term, rd.hard_state.vote) == (2, 1)
    assert rd.messages == [], f"sent before the new term was durable: {rd.messages}"
    assert any(m.type == MessageType.APP and m.to == 2 for m in rd.messages_after_persist)


def test_a_vote_persisted_for_an_older_term_is_not_reused_in_the_term_the_log_shows() -> None:
    """A crash kept a Ready's entries (term 3) but not the hard state written after them, which still
    says term 2 with a vote for member 2. On restart the member is in term 3 (its log says so), and
    the term-2 vote must not count as a term-3 vote: that vote was never cast, and carrying it over
    could let member 2 collect it while the lost hard state had promised it to someone else.
    Fix: Raft.__init__ drops the persisted vote when the log's last term is newer."""
    storage = MemoryStorage()
    storage.apply_snapshot(bootstrap_snapshot({1, 2, 3}))
    storage.append([Entry(2, 2), Entry(3, 3, data=b"x")])
    storage.set_hard_state(HardState(term=2, vote=2, commit=1))
    node = RawNode(Config(id=1, rng=random.Random(1)), storage)
    assert node.raft.term == 3
    assert node.raft.vote == NO_LEADER
    # Member 2 asks for member 1's vote in term 3 with a log no better than member 1's: refused,
    # where a carried-over vote for 2 would have granted it.
    node.step(Message(MessageType.VOTE, to=1, sender=2, term=3, index=2, log_term=2))
    rd = node.ready()
    (response,) = rd.messages_after_persist
    assert response.type == MessageType.VOTE_RESP and response.reject

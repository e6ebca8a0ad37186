"""Regression tests for four bugs a review of the raft core found, one story each.

Each docstring says what went wrong and which change prevents it; each test asserts the safe outcome
and fails on the core as it was before that change.
"""

from __future__ import annotations

import random

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
    RawNode,
    ReadState,
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
    """Review bug 2. Leader 2 of voters {1, 2} demotes itself to a learner. While it is still applying
    its backlog (one entry per Ready), it commits a write w with 1's acknowledgement and answers the
    client; 1 knows the demotion is committed but not w. 2 applies the demotion and is cut off; 1,
    now the only voter, wins at once and answered a ReadIndex at its own commit index, below w: a
    stale read of an acknowledged write.

    Fix: ``_leader_read_index`` checks ``_committed_in_current_term`` before the single-voter shortcut,
    so the read waits for 1's empty entry of its term, which commits w too (thesis §6.4)."""
    net = Network(voters=(1, 2), max_apply_bytes=1)  # a member applies one committed entry per Ready
    net.elect(2)
    for i in range(4):
        net[2].propose(b"a%d" % i)
    net[2].propose_conf_change(ConfChange(LEARNER, 2))
    demotion = net[2].raft.log.last_index()
    net.process_ready(2)
    net.deliver(lambda m: m.to == 1)
    net.process_ready(1)
    net.deliver(lambda m: m.to == 2)
    assert net[2].raft.log.committed == demotion > net[2].raft.log.applied

    # Still applying its backlog, 2 takes a write w: 1 learns the demotion is committed and acks w.
    net.process_ready(2)
    net[2].propose(b"w")
    w = net[2].raft.log.last_index()
    net.process_ready(2)
    net.deliver(lambda m: m.to == 1)
    while net.process_ready(1) is not None:
        pass
    net.deliver(lambda m: m.to == 2)
    assert net[2].raft.log.committed == w  # a majority of {1, 2} holds w

    # 2 applies the demotion, then w (its client hears "done"), and starts handing over; 1 hears no
    # more from it.
    while net.process_ready(2) is not None:
        pass
    assert net.applied_data(2)[-1] == b"w" and net[2].raft.learners == {2}
    net.drop(lambda m: m.to == 1)
    net.isolate(2)
    assert net[1].raft.voters == {1} and net[1].raft.log.committed < w

    net[1].campaign()  # the only voter: it wins at once
    assert net.role(1) == Role.LEADER
    net[1].read_index(b"after-w")
    net.stabilize()
    assert [r.request_ctx for r in net.read_states[1]] == [b"after-w"]
    assert net.read_states[1][0].index >= w, f"read index {net.read_states[1][0].index} misses w at {w}"
    assert net.read_states[1] == [ReadState(net[1].raft.log.committed, b"after-w")]


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
    which the application may send before the fsync. Here member 1 held an unpersisted entry w when it
    won term 3: learner 2 received w and 1's empty entry of term 3 after it, then 1 crashed before the
    fsync. Restarted, 1 had lost w, term 3 and its vote, led term 3 again, and put different entries at
    the same indexes and term 3: two entries at one index and term, breaking log matching.

    Fix: ``RawNode.ready()`` moves every message into ``messages_after_persist`` when the Ready changes
    the term or the vote, so nothing of term 3 leaves before term 3 is durable."""
    net = Network(voters=(1, 2))
    net.elect(2)
    net[2].propose_conf_change(ConfChange(LEARNER, 2))  # 2 hands the cluster to 1, stays as a learner
    net.process_ready(2)
    net.deliver(lambda m: m.to == 1)
    net.process_ready(1)
    net.deliver(lambda m: m.to == 2)
    demotion = net[2].raft.log.committed
    # Before applying the demotion, 2 still leads: it takes a write w and sends it to 1.
    net[2].propose(b"w")
    net.process_ready(2)
    assert net[2].raft.learners == {2}  # 2 still leads, handing over
    net.drop(lambda m: m.type == MT.TIMEOUT_NOW)  # 1 is to win by its own campaign below
    net.deliver(lambda m: m.to == 1 and not m.entries)  # the commit index: 1 applies the demotion
    net.process_ready(1)
    assert net[1].raft.voters == {1}
    net.deliver(lambda m: m.to == 1)  # w, which 1 holds but has not yet persisted
    w = net[1].raft.log.last_index()
    assert w == demotion + 1 and net[1].raft.log.stable_last_index() == demotion

    net[1].campaign()  # the only voter: it wins term 3 at once
    assert net.role(1) == Role.LEADER and net[1].raft.term == 3
    rd = net[1].ready()
    assert rd.hard_state is not None and (rd.hard_state.term, rd.hard_state.vote) == (3, 1)
    sent_before_fsync = list(rd.messages)  # step 1 of the Ready contract: may leave at once
    net.queue.extend(sent_before_fsync)
    net.deliver(lambda m: m.to == 2)
    net.process_ready(2)
    net.restart(1)  # the crash comes before the fsync: nothing of the Ready is on 1's disk

    while net.process_ready(1) is not None:
        pass
    net[1].campaign()
    assert net.role(1) == Role.LEADER and net[1].raft.term == 3  # term 3 again: nobody else saw it
    net[1].propose(b"y")
    conflicts = _same_index_and_term_different_entry(net, 1, 2)
    assert conflicts == [], f"leader 1 and learner 2 hold different entries at (index, term) {conflicts}"
    assert sent_before_fsync == []
    net.stabilize()
    assert net.log(2) == net.log(1)
    assert net.applied_data(2)[-1] == b"y"


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

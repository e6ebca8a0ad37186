"""Specification tests for replicating the log: the Raft paper (Ongaro & Ousterhout, "In Search of
an Understandable Consensus Algorithm") §5.3 log replication with Figure 7's follower logs, §5.4.2
committing entries from previous terms with Figure 8's scenario, and the Ready contract of this core
(persist, then send what promises durability, then apply).

Founding members start from the bootstrap snapshot (index 1, term 1), so the first election is for
term 2 and a new leader's empty entry lands at index 2.
"""

from __future__ import annotations

import pytest
from loopback import (
    MT,
    Network,
    drain,
    founding_storage,
    make_config,
    new_member,
    persist,
    storage_with_log,
)

from flotilla.raft import (
    NO_LEADER,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    RaftError,
    RawNode,
    Role,
    Snapshot,
    bugs,
)

# --- §5.3 log replication ----------------------------------------------------------------------------


def test_5_3_a_leader_appends_a_proposal_and_sends_it_to_every_follower() -> None:
    """§5.3: "The leader appends the command to its log as a new entry, then issues AppendEntries RPCs
    in parallel to each of the other servers", naming the entry that precedes the new ones."""
    net = Network()
    net.elect(1)
    net[1].propose(b"x")
    rd = net.process_ready(1)
    assert rd is not None
    assert rd.entries == [Entry(2, 3, EntryType.NORMAL, b"x")]
    apps = sorted(rd.messages, key=lambda m: m.to)
    assert [(m.type, m.to, m.term, m.index, m.log_term, m.commit) for m in apps] == [
        (MT.APP, 2, 2, 2, 2, 2),
        (MT.APP, 3, 2, 2, 2, 2),
    ]
    assert all(m.entries == [Entry(2, 3, EntryType.NORMAL, b"x")] for m in apps)
    assert rd.committed_entries == []


def test_5_3_an_entry_is_committed_once_a_majority_stores_it() -> None:
    """§5.3: "A log entry is committed once the leader that created the entry has replicated it on a
    majority of the servers"; the leader then applies it. Member 3 hears nothing and is not needed."""
    net = Network()
    net.elect(1)
    net.isolate(3)
    net[1].propose(b"x")
    net.stabilize()
    assert net[1].raft.log.committed == 3
    assert net.applied_data(1) == [b"x"]
    assert net[3].raft.log.last_index() == 2


def test_5_3_followers_learn_the_commit_index_and_apply() -> None:
    """§5.3: "The leader keeps track of the highest index it knows to be committed, and it includes that
    index in future AppendEntries RPCs (including heartbeats) ... Once a follower learns that a log
    entry is committed, it applies the entry to its local state machine (in log order)." """
    net = Network()
    net.elect(1)
    net[1].propose_entries([b"a", b"b"])
    net.stabilize()
    for member in (1, 2, 3):
        assert net[member].raft.log.committed == 4
        assert net.applied_data(member) == [b"a", b"b"]
        assert [e.index for e in net.applied[member]] == [2, 3, 4]


def test_5_3_a_heartbeat_carries_the_commit_index() -> None:
    """§5.3: the commit index reaches followers in heartbeats too; a follower never commits beyond
    what it holds (the leader caps the heartbeat's commit at what the follower acknowledged)."""
    net = Network()
    net.elect(1)
    net[1].propose(b"x")
    net.process_ready(1)
    net.deliver(lambda m: m.to == 2)
    net.process_ready(2)
    net.deliver(lambda m: m.to == 1)  # 2's ack: x is committed; the APP to 3 is still queued
    net.process_ready(1)
    net.drop()
    assert net[1].raft.log.committed == 3 and net[2].raft.log.committed == 2
    net.tick(1)
    net.process_ready(1)
    beats = net.take(lambda m: m.type == MT.HEARTBEAT)
    assert {m.to: m.commit for m in beats} == {2: 3, 3: 2}
    net.queue.extend(beats)
    net.deliver()
    assert net[2].raft.log.committed == 3 and net[3].raft.log.committed == 2


def test_5_3_committing_an_entry_commits_every_entry_before_it() -> None:
    """§5.3: committing an entry "also commits all preceding entries in the leader's log, including
    entries created by previous leaders" — here two entries a term-1 leader left behind."""
    net = Network()
    net.add(1, storage_with_log((1, 2, 3), [1, 1]))
    net.elect(1)
    net.stabilize()
    assert net[1].raft.log.committed == 4
    for member in (1, 2, 3):
        assert [(e.index, e.term) for e in net.applied[member]] == [(2, 1), (3, 1), (4, 2)]


def test_5_3_a_lost_append_is_retried() -> None:
    """§5.3: "If followers crash or run slowly, or if network packets are lost, the leader retries
    AppendEntries RPCs indefinitely": the heartbeat response of a lagging follower triggers a resend."""
    net = Network()
    net.elect(1)
    net.isolate(3)
    net[1].propose(b"x")
    net.stabilize()
    net.heal()
    assert net[3].raft.log.last_index() == 2
    net.tick(1)  # heartbeat; 3's answer tells the leader it lags
    net.stabilize()
    assert net.log(3) == net.log(1)
    assert net.applied_data(3) == [b"x"]


# Follower log for the consistency-check tests: index/term 1/1 (snapshot) 2/1 3/2, commit 1.
@pytest.mark.parametrize(
    ("index", "log_term", "reject", "answer_index", "hint", "hint_term"),
    [
        (1, 1, False, 1, 0, 0),
        (2, 1, False, 2, 0, 0),
        (3, 2, False, 3, 0, 0),
        (2, 2, True, 2, 2, 1),  # entry 2 exists with another term
        (3, 1, True, 3, 2, 1),  # our 3 is from term 2 > 1: hint at 2, the last entry of term <= 1
        (4, 2, True, 4, 3, 2),  # no entry 4: hint at our last entry
        (6, 3, True, 6, 3, 2),
    ],
)
def test_5_3_a_follower_refuses_entries_whose_predecessor_does_not_match(
    index: int, log_term: int, reject: bool, answer_index: int, hint: int, hint_term: int
) -> None:
    """§5.3: "If the follower does not find an entry in its log with the same index and term, then it
    refuses the new entries." The refusal carries a hint (the last index whose term is <= the
    leader's log_term, and that term) so the leader can skip a whole term per round trip (§5.3's
    optimization, as etcd implements it)."""
    storage = storage_with_log((1, 2, 3), [1, 2])
    node = RawNode(make_config(2), storage)
    drain(node, storage)
    node.step(Message(MT.APP, to=2, sender=1, term=2, index=index, log_term=log_term, commit=1))
    rd = node.ready()
    [answer] = rd.messages_after_persist
    assert (answer.type, answer.to, answer.reject, answer.index) == (MT.APP_RESP, 1, reject, answer_index)
    if reject:
        assert (answer.reject_hint, answer.log_term) == (hint, hint_term)
        assert node.raft.log.last_index() == 3


@pytest.mark.parametrize(
    ("index", "log_term", "entries", "expected"),
    [
        # Follower log: 2/2 3/3 after the bootstrap snapshot.
        (3, 3, [(4, 3)], [(2, 2), (3, 3), (4, 3)]),
        (2, 2, [(3, 4)], [(2, 2), (3, 4)]),
        (1, 1, [(2, 2)], [(2, 2), (3, 3)]),  # a stale prefix: nothing is truncated
        (1, 1, [(2, 4)], [(2, 4)]),  # conflict at 2: 2 and 3 go
        (1, 1, [(2, 2), (3, 4), (4, 4)], [(2, 2), (3, 4), (4, 4)]),
    ],
)
def test_5_3_a_follower_deletes_a_conflicting_suffix_and_appends(
    index: int, log_term: int, entries: list, expected: list
) -> None:
    """§5.3 (Figure 2, AppendEntries receiver 3-4): "If an existing entry conflicts with a new one (same
    index but different terms), delete the existing entry and all that follow it"; append any new
    entries. The overwrite reaches storage through the Ready."""
    storage = storage_with_log((1, 2, 3), [2, 3])
    node = RawNode(make_config(2), storage)
    drain(node, storage)
    new = [Entry(t, i) for i, t in entries]
    node.step(Message(MT.APP, to=2, sender=1, term=4, index=index, log_term=log_term, entries=new, commit=1))
    [answer] = drain(node, storage)
    assert not answer.reject
    assert [(e.index, e.term) for e in storage.entries(2, storage.last_index() + 1)] == expected
    assert node.raft.log.last_index() == expected[-1][0]


def test_5_3_the_truncation_check_catches_a_kept_conflicting_suffix() -> None:
    """The truncation table above is sharp: with the bug switched on, the stale entry 3/3 survives."""
    storage = storage_with_log((1, 2, 3), [2, 3])
    node = RawNode(make_config(2), storage)
    drain(node, storage)
    with bugs.injected(bugs.Bug.KEEP_CONFLICTING_SUFFIX):
        node.step(
            Message(MT.APP, to=2, sender=1, term=4, index=1, log_term=1, entries=[Entry(4, 2)], commit=1)
        )
    drain(node, storage)
    assert (3, 3) in [(e.index, e.term) for e in storage.entries(2, storage.last_index() + 1)]


# Figure 7 of the paper, shifted by one: our index 1 is the bootstrap snapshot (term 1).
FIGURE_7_LEADER = [1, 1, 4, 4, 5, 5, 6, 6, 6]


@pytest.mark.parametrize(
    "follower",
    [
        pytest.param([1, 1, 4, 4, 5, 5, 6, 6], id="a-missing-one"),
        pytest.param([1, 1, 4], id="b-missing-many"),
        pytest.param([1, 1, 4, 4, 5, 5, 6, 6, 6, 6], id="c-extra-uncommitted"),
        pytest.param([1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], id="d-extra-newer-term"),
        pytest.param([1, 1, 4, 4, 4, 4], id="e-missing-and-extra"),
        pytest.param([1, 1, 2, 2, 2, 3, 3, 3, 3, 3], id="f-a-different-history"),
    ],
)
def test_5_3_a_leader_brings_every_follower_log_into_agreement(follower: list[int]) -> None:
    """§5.3 (Figure 7): "the leader handles inconsistencies by forcing the followers' logs to duplicate
    its own"; missing entries are sent, extraneous ones are deleted. Member 3 holds the leader's log
    and gives it the votes it needs (d's newer last term makes it refuse)."""
    net = Network()
    net.add(1, storage_with_log((1, 2, 3), FIGURE_7_LEADER, hard_term=8))
    net.add(2, storage_with_log((1, 2, 3), follower, hard_term=8))
    net.add(3, storage_with_log((1, 2, 3), FIGURE_7_LEADER, hard_term=8))
    net.elect(1)
    net.stabilize()
    leader_log = [(i, t) for i, t in enumerate(FIGURE_7_LEADER, 2)] + [(11, 9)]
    assert net.log(1) == leader_log
    assert net.log(2) == leader_log
    stored = net.storages[2]
    assert [(e.index, e.term) for e in stored.entries(2, stored.last_index() + 1)] == leader_log
    assert net[2].raft.log.committed == 11


def test_5_3_a_rejection_hint_skips_a_whole_conflicting_term() -> None:
    """§5.3: "the follower can include the term of the conflicting entry and the first index it stores
    for that term. With this information, the leader can decrement nextIndex to bypass all of the
    conflicting entries in that term". Figure 7's follower (f) catches up after one refusal, where
    stepping back one entry at a time would take eight."""
    net = Network()
    net.add(1, storage_with_log((1, 2, 3), FIGURE_7_LEADER, hard_term=8))
    net.add(2, storage_with_log((1, 2, 3), [1, 1, 2, 2, 2, 3, 3, 3, 3, 3], hard_term=8))
    net.add(3, storage_with_log((1, 2, 3), FIGURE_7_LEADER, hard_term=8))
    net.elect(1)
    net.stabilize()
    refusals = [m for m in net.delivered if m.type == MT.APP_RESP and m.sender == 2 and m.reject]
    # The first probe names the leader's last entry before its election, 10/6; f's entry 10 is from
    # term 3, and f's last entry of a term <= 6 is 10 (term 3). The leader's last entry of a term
    # <= 3 is 3 (term 1): the next probe goes straight there.
    assert [(m.index, m.reject_hint, m.log_term) for m in refusals] == [(10, 10, 3)]
    probes = [m for m in net.delivered if m.type == MT.APP and m.to == 2]
    assert [(m.index, m.log_term) for m in probes[:2]] == [(10, 6), (3, 1)]
    assert net.log(2) == net.log(1)


# --- §5.4.2 committing entries from previous terms ---------------------------------------------------


def _campaign_until_won(net: Network, candidate: int, voters: set[int]) -> None:
    """Campaign (as often as it takes) with only ``voters`` hearing the requests."""
    for _ in range(3):
        net[candidate].campaign()
        net.process_ready(candidate)
        net.deliver(lambda m: m.sender == candidate and m.to in voters)
        for voter in voters:
            net.process_ready(voter)
        net.deliver(lambda m: m.to == candidate)
        net.drop(lambda m: m.sender == candidate and m.type == MT.VOTE)
        if net.role(candidate) == Role.LEADER:
            return
    raise AssertionError(f"{candidate} did not win")


def _figure_8_up_to_c(net: Network) -> None:
    # (a) S1 leads term 2; its entry 2 (term 2) reaches S2 only.
    _campaign_until_won(net, 1, {2, 3, 4})
    net.process_ready(1)
    net.deliver(lambda m: m.to == 2)
    net.drop()
    net.process_all()
    net.drop()
    # (b) S1 crashes; S5 wins term 3 with S3 and S4 and appends its own entry 2 (term 3), which
    #     nobody receives.
    net.isolate(1)
    _campaign_until_won(net, 5, {3, 4})
    net.process_all()
    net.drop()
    # (c) S5 crashes; S1 restarts and wins term 4 with S3 and S4 (S2 is slow). It replicates its entry
    #     2 (term 2) to S3 and S4 — one entry per message — but not yet its term-4 entry 3.
    net.isolated = {2, 5}
    net.restart(1, max_msg_bytes=1)
    _campaign_until_won(net, 1, {3, 4})
    assert net[1].raft.term == 4

    def keeps_entry_3_back(m: Message) -> bool:
        # An append of entry 3 to a member that holds entry 2 would be accepted: lose it.
        has_entry_2 = m.to in net.nodes and net[m.to].raft.log.last_index() >= 2
        return not (m.type == MT.APP and any(e.term == 4 for e in m.entries) and has_entry_2)

    for _ in range(10):
        net.process_all()
        net.deliver(keeps_entry_3_back)
        net.drop()
    assert [net.log(i)[:1] for i in (1, 2, 3, 4)] == [[(2, 2)]] * 4


def test_5_4_2_a_leader_never_commits_an_older_term_entry_by_counting_replicas() -> None:
    """§5.4.2 (Figure 8): "Raft never commits log entries from previous terms by counting replicas."
    In (c) entry 2 of term 2 sits on a majority, yet the term-4 leader must not commit it: in (d) S5
    can still be elected and replace it everywhere."""
    net = Network(voters=(1, 2, 3, 4, 5))
    _figure_8_up_to_c(net)
    assert net[1].status().progress[3].match == 2 and net[1].status().progress[4].match == 2
    assert net[1].raft.log.committed == 1
    # (d) S1 crashes; S5 comes back and wins term 5 (its last term, 3, beats everyone's 2) ...
    net.isolated = {1}
    net.restart(5)
    _campaign_until_won(net, 5, {2, 3, 4})
    net.stabilize()
    # ... and its entry 2 (term 3) replaces term 2's on S2, S3 and S4. Had (c) committed entry 2,
    # a committed entry would now be lost.
    for member in (2, 3, 4, 5):
        assert net.log(member) == [(2, 3), (3, 5)]
        assert (2, 2) not in [(e.index, e.term) for e in net.applied[member]]
    assert net.applied[1] == []


def test_5_4_2_the_figure_8_check_catches_a_leader_that_commits_by_counting() -> None:
    """The scenario above is sharp: with the bug switched on, S1 commits entry 2 in (c)."""
    net = Network(voters=(1, 2, 3, 4, 5))
    with bugs.injected(bugs.Bug.COMMIT_PREVIOUS_TERM):
        _figure_8_up_to_c(net)
    assert net[1].raft.log.committed == 2


def test_5_4_2_an_entry_of_the_current_term_commits_the_older_ones() -> None:
    """§5.4.2: "once an entry from the current term has been committed in this way, then all prior
    entries are committed indirectly." Continuing Figure 8 (e): S1 replicates its term-4 entry."""
    net = Network(voters=(1, 2, 3, 4, 5))
    _figure_8_up_to_c(net)
    net.tick(1)  # a heartbeat round: S3 and S4 answer, and get entry 3 in return
    net.stabilize()
    assert net[1].raft.log.committed == 3
    assert [(e.index, e.term) for e in net.applied[1]] == [(2, 2), (3, 4)]


# --- the Ready contract ------------------------------------------------------------------------------


def test_ready_messages_that_promise_durability_wait_for_persistence() -> None:
    """Ready step 3: votes and append responses promise what the same Ready persists; a leader's
    appends promise nothing about its disk and go out at once."""
    net = Network()
    net[1].campaign()
    rd = net.process_ready(1)
    assert rd is not None and rd.hard_state == HardState(2, 1, 1)
    assert {m.type for m in rd.messages_after_persist} == {MT.VOTE} and rd.messages == []
    net.deliver()
    rd = net.process_ready(2)
    assert rd is not None and rd.hard_state == HardState(2, 1, 1)
    assert [m.type for m in rd.messages_after_persist] == [MT.VOTE_RESP] and rd.messages == []
    net.process_all()
    net.deliver()
    rd = net.process_ready(1)
    assert rd is not None and rd.entries == [Entry(2, 2)]
    assert {m.type for m in rd.messages} == {MT.APP} and rd.messages_after_persist == []
    net.deliver()
    rd = net.process_ready(2)
    assert rd is not None and rd.entries == [Entry(2, 2)]
    assert [m.type for m in rd.messages_after_persist] == [MT.APP_RESP] and rd.messages == []


def test_ready_a_leader_counts_its_own_entry_only_after_advance() -> None:
    """Ready step 1: "a leader counts its own entries towards commit only after advance()". A single
    member commits nothing until its Ready is persisted."""
    storage = founding_storage((1,))
    node = RawNode(make_config(1), storage)
    node.campaign()
    drain(node, storage)
    node.propose(b"x")
    rd = node.ready()
    assert rd.entries == [Entry(2, 3, EntryType.NORMAL, b"x")]
    assert rd.committed_entries == [] and node.raft.log.committed == 2
    persist(storage, rd)
    node.advance(rd)
    assert node.raft.log.committed == 3
    assert node.ready().committed_entries == [Entry(2, 3, EntryType.NORMAL, b"x")]


def test_ready_a_leader_needs_its_own_persistence_for_a_majority_of_three() -> None:
    """One follower's acknowledgement plus the leader's *unpersisted* entry is not a majority."""
    net = Network()
    net.elect(1)
    net[1].propose(b"x")
    rd = net[1].ready()
    net.queue.extend(rd.messages)
    net.deliver(lambda m: m.to == 2)
    net.process_ready(2)
    net.deliver(lambda m: m.to == 1)
    assert net[1].raft.log.committed == 2
    persist(net.storages[1], rd)
    net[1].advance(rd)
    assert net[1].raft.log.committed == 3


def test_ready_an_installed_snapshot_is_acknowledged_after_it_is_persisted() -> None:
    """§7 and Ready steps 2-4: the snapshot is persisted before the response promising it leaves, and
    it counts as applied once the Ready is advanced."""
    storage = storage_with_log((1, 2, 3), [1, 1])
    node = RawNode(make_config(2), storage)
    drain(node, storage)
    snapshot = Snapshot(9, 3, ConfState(frozenset({1, 2, 3})), b"state")
    node.step(Message(MT.SNAP, to=2, sender=1, term=3, snapshot=snapshot))
    rd = node.ready()
    assert rd.snapshot == snapshot and rd.entries == [] and rd.committed_entries == []
    assert rd.hard_state == HardState(3, NO_LEADER, 9)
    [answer] = rd.messages_after_persist
    assert (answer.type, answer.index, answer.reject) == (MT.APP_RESP, 9, False) and rd.messages == []
    persist(storage, rd)
    node.advance(rd)
    assert (node.raft.log.applied, node.raft.log.first_index(), node.raft.log.last_index()) == (9, 10, 9)
    assert not node.has_ready()


def test_ready_is_never_empty() -> None:
    net = Network()
    net.elect(1)
    net.stabilize()
    assert not any(net[i].has_ready() for i in (1, 2, 3))
    net.tick(2)  # a follower's tick changes nothing worth reporting
    assert not net[2].has_ready()


def test_ready_reports_role_changes_in_soft_state() -> None:
    net = Network()
    net[1].campaign()
    rd = net.process_ready(1)
    assert rd is not None and rd.soft_state == (NO_LEADER, Role.CANDIDATE)
    net.deliver()
    net.process_all()
    net.deliver()
    rd = net.process_ready(1)
    assert rd is not None and rd.soft_state == (1, Role.LEADER)
    net.deliver(lambda m: m.to == 2)
    rd = net.process_ready(2)
    assert rd is not None and rd.soft_state == (1, Role.FOLLOWER)


def test_a_restarted_member_replays_committed_entries() -> None:
    """Figure 2: the state machine is volatile; a restarted member re-applies from its snapshot."""
    net = Network()
    net.elect(1)
    net[1].propose_entries([b"a", b"b"])
    net.stabilize()
    net.restart(2)
    assert net[2].raft.log.committed == 4
    net.stabilize()
    assert net.applied_data(2) == [b"a", b"b"]


@pytest.mark.parametrize("kind", [MT.HUP, MT.BEAT, MT.CHECK_QUORUM, MT.UNREACHABLE, MT.SNAP_STATUS])
def test_local_messages_cannot_arrive_from_the_network(kind: MT) -> None:
    """A peer must not be able to make a member campaign, heartbeat or step down on its behalf."""
    node = new_member(1)
    with pytest.raises(RaftError, match=kind.name):
        node.step(Message(kind, to=1, sender=2, term=1))

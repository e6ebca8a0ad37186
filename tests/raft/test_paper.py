"""Specification tests: each checks one clause of the Raft paper (Ongaro & Ousterhout, "In Search of an
Understandable Consensus Algorithm", §5-§6) or of Ongaro's thesis (§3.10 leadership transfer, §4.2.3
leases, §6.2 check-quorum, §6.4 ReadIndex, §9.6 pre-vote), plus the Ready contract of this core.

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
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    ProposalDropped,
    RaftError,
    RawNode,
    ReadState,
    Role,
    Snapshot,
    bugs,
)
from flotilla.raft.raft import CAMPAIGN_TRANSFER

ADD, REMOVE, LEARNER = ConfChangeType.ADD_NODE, ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER


def ticks_until_campaign(node: RawNode, limit: int = 1000) -> int:
    """Tick a follower or candidate until it starts an election; returns the ticks it took."""
    term, role = node.raft.term, node.raft.role
    for count in range(1, limit + 1):
        node.tick()
        if node.raft.term != term or node.raft.role != role:
            return count
    raise AssertionError(f"no election after {limit} ticks")


def vote_request(candidate: int, to: int, term: int, last_index: int, last_term: int, **kw) -> Message:
    return Message(MT.VOTE, to=to, sender=candidate, term=term, index=last_index, log_term=last_term, **kw)


def responses(sent: list[Message], kind: MT) -> list[Message]:
    return [m for m in sent if m.type == kind]


# --- §5.1 terms ------------------------------------------------------------------------------------


def test_5_1_members_start_as_followers() -> None:
    """§5.1: "When servers start up, they begin as followers." Founding members are in term 1."""
    node = new_member(1)
    assert node.raft.role == Role.FOLLOWER
    assert (node.raft.term, node.raft.vote, node.leader_id) == (1, NO_LEADER, NO_LEADER)
    assert (node.raft.log.committed, node.raft.log.applied) == (1, 1)


def _make_role(net: Network, role: Role) -> None:
    if role == Role.CANDIDATE:
        net[1].campaign()
        net.process_ready(1)
    elif role == Role.LEADER:
        net.elect(1)
    assert net.role(1) == role


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE, Role.LEADER])
@pytest.mark.parametrize("kind", [MT.APP, MT.HEARTBEAT, MT.VOTE])
def test_5_1_a_higher_term_turns_any_member_into_a_follower(role: Role, kind: MT) -> None:
    """§5.1: "If a server receives a request with a higher term, it updates its current term and
    reverts to follower state." A message from a leader also tells who leads; a vote request does not."""
    net = Network()
    _make_role(net, role)
    term = net[1].raft.term + 3
    m = Message(kind, to=1, sender=2, term=term, index=1, log_term=1)
    if kind == MT.VOTE:
        m.index, m.log_term = 99, 99
    net[1].step(m)
    assert (net.role(1), net[1].raft.term) == (Role.FOLLOWER, term)
    assert net[1].leader_id == (NO_LEADER if kind == MT.VOTE else 2)
    rd = net.process_ready(1)
    assert rd is not None and rd.hard_state is not None and rd.hard_state.term == term


@pytest.mark.parametrize("kind", [MT.APP, MT.HEARTBEAT, MT.VOTE, MT.APP_RESP, MT.VOTE_RESP])
def test_5_1_a_message_of_a_stale_term_is_ignored(kind: MT) -> None:
    """§5.1: "If a server receives a request with a stale term number, it rejects the request." With
    neither pre-vote nor check-quorum, etcd (and we) drop it without an answer."""
    storage = founding_storage((1, 2, 3))
    storage.set_hard_state(HardState(term=5, vote=0, commit=1))
    node = RawNode(make_config(1), storage)
    drain(node, storage)
    node.step(Message(kind, to=1, sender=2, term=4, index=1, log_term=1, entries=[Entry(4, 2)], commit=2))
    assert (node.raft.term, node.raft.role, node.leader_id) == (5, Role.FOLLOWER, NO_LEADER)
    assert node.raft.log.last_index() == 1
    assert not node.has_ready()


@pytest.mark.parametrize("extension", [{"pre_vote": True}, {"check_quorum": True}])
def test_5_1_a_stale_leader_is_told_the_current_term(extension: dict) -> None:
    """§5.1: "If a candidate or leader discovers that its term is out of date, it immediately reverts to
    follower state." With pre-vote or check-quorum a member answers a stale leader's append with its
    term: a pre-vote cluster never bumps the stale leader's term otherwise (etcd does the same)."""
    net = Network(**extension)
    net.elect(1)
    net.isolate(1)
    net.run_until(lambda: Role.LEADER in (net.role(2), net.role(3)))  # 2 or 3 wins a newer term
    new_term = net[2].raft.term
    assert net.role(1) == Role.LEADER and net[1].raft.term < new_term
    assert {net.role(2), net.role(3)} == {Role.LEADER, Role.FOLLOWER}
    net.heal()
    net[1].tick()  # a heartbeat in the old term
    net.process_ready(1)
    heartbeats = net.take(lambda m: m.sender == 1)
    assert heartbeats and all(m.term < new_term for m in heartbeats)
    net.queue.extend(heartbeats)
    net.deliver()
    net.process_all()
    answers = net.take(lambda m: m.to == 1)
    assert answers and all(m.type == MT.APP_RESP and m.term == new_term for m in answers)
    net.queue.extend(answers)
    net.deliver()
    assert (net.role(1), net[1].raft.term) == (Role.FOLLOWER, new_term)


# --- §5.2 leader election ----------------------------------------------------------------------------


def test_5_2_a_leader_sends_heartbeats_every_heartbeat_interval() -> None:
    """§5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries) to all
    followers in order to maintain their authority." """
    net = Network(heartbeat_interval_ticks=3)
    net.elect(1)
    for _ in range(2):
        net.tick(1)
        assert net.process_ready(1) is None
    net.tick(1)
    rd = net.process_ready(1)
    assert rd is not None
    assert sorted((m.type, m.to, m.term) for m in rd.messages) == [(MT.HEARTBEAT, 2, 2), (MT.HEARTBEAT, 3, 2)]
    assert all(not m.entries for m in rd.messages)


def test_5_2_a_follower_that_hears_nothing_starts_an_election() -> None:
    """§5.2: "If a follower receives no communication over a period of time called the election
    timeout, then it ... begins an election": it increments its term, votes for itself, and issues
    RequestVote RPCs naming its last entry (the vote is persisted before the requests leave)."""
    storage = founding_storage((1, 2, 3))
    node = RawNode(make_config(1), storage)
    drain(node, storage)
    ticks = ticks_until_campaign(node)
    assert 10 <= ticks < 20  # election_timeout_ticks=10
    assert (node.raft.role, node.raft.term, node.raft.vote) == (Role.CANDIDATE, 2, 1)
    rd = node.ready()
    assert rd.hard_state == HardState(term=2, vote=1, commit=1)
    requests = sorted(rd.messages_after_persist, key=lambda m: m.to)
    assert [(m.type, m.to, m.term, m.index, m.log_term) for m in requests] == [
        (MT.VOTE, 2, 2, 1, 1),
        (MT.VOTE, 3, 2, 1, 1),
    ]
    assert rd.messages == []


def test_5_2_heartbeats_keep_a_follower_from_campaigning() -> None:
    """§5.2: "A server remains in follower state as long as it receives valid RPCs from a leader." """
    storage = founding_storage((1, 2, 3))
    node = RawNode(make_config(2), storage)
    for tick in range(200):
        if tick % 5 == 0:
            node.step(Message(MT.HEARTBEAT, to=2, sender=1, term=2, commit=1))
        node.tick()
        assert node.raft.role == Role.FOLLOWER and node.raft.term == 2
    drain(node, storage)


def test_5_2_election_timeouts_are_randomized_between_et_and_twice_et() -> None:
    """§5.2: "election timeouts are chosen randomly from a fixed interval" — etcd's [et, 2*et)."""
    observed = set()
    for seed in range(300):
        node = RawNode(make_config(1, seed=seed, election_timeout_ticks=10), founding_storage((1, 2, 3)))
        observed.add(ticks_until_campaign(node))
        observed.add(ticks_until_campaign(node))  # a candidate draws a fresh timeout for its next try
    assert observed <= set(range(10, 20))
    assert len(observed) >= 8  # spread over the interval, not a constant


def test_5_2_members_draw_different_timeouts() -> None:
    """§5.2: randomization makes split votes rare: followers of one cluster rarely time out together."""
    timeouts = [
        ticks_until_campaign(RawNode(make_config(i, seed=1000 + i), founding_storage(range(1, 6))))
        for i in range(1, 6)
    ]
    assert len(set(timeouts)) > 1


@pytest.mark.parametrize(
    ("size", "answers", "role"),
    [
        (1, {}, Role.LEADER),
        (3, {2: True, 3: True}, Role.LEADER),
        (3, {2: True}, Role.LEADER),
        (5, {2: True, 3: True, 4: True, 5: True}, Role.LEADER),
        (5, {2: True, 3: True}, Role.LEADER),
        (5, {2: True, 3: False, 4: True}, Role.LEADER),
        (3, {}, Role.CANDIDATE),
        (5, {2: True}, Role.CANDIDATE),
        (5, {2: False, 3: False}, Role.CANDIDATE),
        (3, {2: False, 3: False}, Role.FOLLOWER),
        (5, {2: False, 3: False, 4: False}, Role.FOLLOWER),
        (5, {2: True, 3: False, 4: False, 5: False}, Role.FOLLOWER),
    ],
)
def test_5_2_a_candidate_wins_with_a_majority_and_loses_to_one(size: int, answers: dict, role: Role) -> None:
    """§5.2: "A candidate wins an election if it receives votes from a majority of the servers in the
    full cluster for the same term." A majority of refusals means it cannot win: it steps back to
    follower (etcd's behaviour; it campaigns again after a timeout)."""
    storage = founding_storage(range(1, size + 1))
    node = RawNode(make_config(1), storage)
    node.campaign()
    drain(node, storage)
    for voter, granted in answers.items():
        node.step(Message(MT.VOTE_RESP, to=1, sender=voter, term=2, reject=not granted))
    assert node.raft.role == role
    assert node.raft.term == 2


def test_5_2_each_voter_counts_once() -> None:
    """§5.2: a majority of *servers*: a duplicated grant is one vote, and a later answer from the same
    voter does not replace its first one."""
    storage = founding_storage(range(1, 6))
    node = RawNode(make_config(1), storage)
    node.campaign()
    drain(node, storage)
    for _ in range(3):
        node.step(Message(MT.VOTE_RESP, to=1, sender=2, term=2))
    node.step(Message(MT.VOTE_RESP, to=1, sender=3, term=2, reject=True))
    node.step(Message(MT.VOTE_RESP, to=1, sender=3, term=2))
    assert node.raft.role == Role.CANDIDATE
    node.step(Message(MT.VOTE_RESP, to=1, sender=4, term=2))
    assert node.raft.role == Role.LEADER


@pytest.mark.parametrize("leader_term", [2, 3])
def test_5_2_a_candidate_recognizes_a_leader_of_its_term_or_newer(leader_term: int) -> None:
    """§5.2: "If the leader's term ... is at least as large as the candidate's current term, then the
    candidate recognizes the leader as legitimate and returns to follower state." """
    storage = founding_storage((1, 2, 3))
    node = RawNode(make_config(1), storage)
    node.campaign()
    drain(node, storage)
    node.step(Message(MT.APP, to=1, sender=3, term=leader_term, index=1, log_term=1))
    assert (node.raft.role, node.leader_id, node.raft.term) == (Role.FOLLOWER, 3, leader_term)


def test_5_2_a_candidate_with_no_winner_starts_a_new_election() -> None:
    """§5.2: "each candidate will time out and start a new election by incrementing its term." """
    storage = founding_storage((1, 2, 3))
    node = RawNode(make_config(1), storage)
    node.campaign()
    drain(node, storage)
    ticks = ticks_until_campaign(node)
    assert 10 <= ticks < 20
    assert (node.raft.role, node.raft.term, node.raft.vote) == (Role.CANDIDATE, 3, 1)
    requests = responses(drain(node, storage), MT.VOTE)
    assert sorted((m.to, m.term) for m in requests) == [(2, 3), (3, 3)]


def test_5_2_a_split_vote_is_resolved_by_a_later_election() -> None:
    """§5.2: "if many followers become candidates at the same time, votes could be split so that no
    candidate obtains a majority"; each then times out and retries, and randomized timeouts make one
    of them retry first and win."""
    net = Network(voters=(1, 2, 3, 4, 5))
    net.isolate(5)
    net[1].campaign()
    net[2].campaign()
    net.process_all()
    # 3 hears from 1 first, 4 from 2 first: two votes each, three needed, and 5 is unreachable.
    net.deliver(lambda m: (m.sender, m.to) in {(1, 3), (2, 4)})
    net.stabilize()
    assert (net.role(1), net.role(2)) == (Role.CANDIDATE, Role.CANDIDATE)
    assert (net[1].raft.term, net[2].raft.term) == (2, 2)
    net.run_until(net.leaders)
    [leader] = net.leaders()
    term = net[leader].raft.term
    assert term >= 3
    assert all(net[i].raft.term == term and net[i].leader_id == leader for i in (1, 2, 3, 4))


@pytest.mark.parametrize(
    ("voted_for", "candidate", "granted"),
    [
        (NO_LEADER, 2, True),
        (NO_LEADER, 3, True),
        (2, 2, True),  # a repeated request from the one we voted for: answer it again
        (3, 3, True),
        (2, 3, False),
        (3, 2, False),
    ],
)
def test_5_2_one_vote_per_term_even_across_restarts(voted_for: int, candidate: int, granted: bool) -> None:
    """§5.2: "Each server will vote for at most one candidate in a given term, on a first-come-first-
    served basis." The vote is read back from storage here, as after a restart (Figure 2: votedFor is
    persistent state)."""
    storage = founding_storage((1, 2, 3))
    storage.set_hard_state(HardState(term=2, vote=voted_for, commit=1))
    node = RawNode(make_config(1), storage)
    node.step(vote_request(candidate, 1, term=2, last_index=1, last_term=1))
    rd = node.ready()
    [answer] = rd.messages_after_persist
    assert (answer.type, answer.to, answer.term, answer.reject) == (MT.VOTE_RESP, candidate, 2, not granted)
    assert node.raft.vote == (candidate if granted else voted_for)
    assert rd.messages == []


def test_5_2_the_one_vote_check_catches_a_double_vote() -> None:
    """The table above is sharp: with the bug switched on, a member that voted for 2 grants 3 too."""
    storage = founding_storage((1, 2, 3))
    storage.set_hard_state(HardState(term=2, vote=2, commit=1))
    node = RawNode(make_config(1), storage)
    with bugs.injected(bugs.Bug.DOUBLE_VOTE):
        node.step(vote_request(3, 1, term=2, last_index=1, last_term=1))
    [answer] = drain(node, storage)
    assert not answer.reject


def test_5_2_a_vote_survives_a_restart() -> None:
    """§5.2 and Figure 2: a member that voted, persisted the vote and restarted still refuses anyone
    else in that term."""
    storage = founding_storage((1, 2, 3))
    node = RawNode(make_config(1), storage)
    node.step(vote_request(2, 1, term=2, last_index=1, last_term=1))
    [grant] = drain(node, storage)
    assert not grant.reject
    restarted = RawNode(make_config(1), storage)
    assert (restarted.raft.term, restarted.raft.vote) == (2, 2)
    restarted.step(vote_request(3, 1, term=2, last_index=5, last_term=1))
    [answer] = drain(restarted, storage)
    assert (answer.to, answer.reject) == (3, True)
    restarted.step(vote_request(2, 1, term=2, last_index=1, last_term=1))
    [answer] = drain(restarted, storage)
    assert (answer.to, answer.reject) == (2, False)


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


# --- §5.4.1 election restriction ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", [MT.VOTE, MT.PRE_VOTE])
@pytest.mark.parametrize(
    ("last_index", "last_term", "granted"),
    [
        # The voter's log ends with 3/2 (index 3, term 2).
        (3, 2, True),  # same last term, same length
        (4, 2, True),  # same last term, longer
        (2, 3, True),  # newer last term, shorter log
        (2, 2, False),  # same last term, shorter
        (9, 1, False),  # older last term, however long
    ],
)
def test_5_4_1_a_vote_needs_a_log_at_least_as_up_to_date(
    kind: MT, last_index: int, last_term: int, granted: bool
) -> None:
    """§5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the candidate
    ... If the logs have last entries with different terms, then the log with the later term is more
    up-to-date. If the logs end with the same term, then whichever log is longer is more up-to-date."
    A pre-vote (thesis §9.6) applies the same check."""
    storage = storage_with_log((1, 2, 3), [2, 2])
    node = RawNode(make_config(1), storage)
    drain(node, storage)
    node.step(Message(kind, to=1, sender=2, term=3, index=last_index, log_term=last_term))
    [answer] = drain(node, storage)
    assert answer.reject is not granted
    assert answer.type == (MT.VOTE_RESP if kind == MT.VOTE else MT.PRE_VOTE_RESP)


def test_5_4_1_the_up_to_date_check_catches_a_vote_for_a_stale_log() -> None:
    """The table above is sharp: with the bug switched on, a shorter log gets the vote."""
    storage = storage_with_log((1, 2, 3), [2, 2])
    node = RawNode(make_config(1), storage)
    drain(node, storage)
    with bugs.injected(bugs.Bug.VOTE_FOR_STALE_LOG):
        node.step(vote_request(2, 1, term=3, last_index=2, last_term=2))
    [answer] = drain(node, storage)
    assert not answer.reject


def test_5_4_1_a_member_missing_committed_entries_cannot_become_leader() -> None:
    """§5.4.1: "a candidate must contact a majority of the cluster in order to be elected, which means
    that every committed entry must be present in at least one of those servers." """
    net = Network()
    net.elect(1)
    net.isolate(3)
    net[1].propose(b"committed")
    net.stabilize()
    net.heal()
    for _ in range(3):
        net[3].campaign()
        net.stabilize()
        assert net.role(3) != Role.LEADER
    votes = [m for m in net.delivered if m.type == MT.VOTE_RESP and m.to == 3]
    assert votes and all(m.reject for m in votes)


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


# --- §6 membership changes (single-server, thesis §4.1) -------------------------------------------


def _change(net: Network, leader: int, kind: ConfChangeType, member: int) -> None:
    net[leader].propose_conf_change(ConfChange(kind, member))
    net.stabilize()


def test_6_adding_a_voter_raises_the_quorum_once_applied() -> None:
    """Thesis §4.1: a server uses the latest configuration it knows. With 4 voters a majority is 3: the
    leader and member 2 alone no longer commit, and member 4 joining (from an empty log, through a
    snapshot and the entries after it) completes the majority."""
    net = Network()
    net.elect(1)
    _change(net, 1, ADD, 4)  # 4 does not exist yet: messages to it are lost
    assert net[1].raft.conf_state().voters == {1, 2, 3, 4}
    net.isolate(3)
    net[1].propose(b"x")
    net.stabilize()
    assert net[1].raft.log.committed == 3  # x (index 4) needs 3 of 4
    net.add(4)
    net.tick(1)
    net.stabilize()
    assert net[1].raft.log.committed == 4
    assert net.log(4) == net.log(1)
    assert net[4].raft.conf_state().voters == {1, 2, 3, 4}
    assert net.applied_data(4) == [b"x"]


def test_6_a_new_member_catches_up_from_a_compacted_leader() -> None:
    """§7: a follower that lacks compacted entries receives the leader's snapshot (InstallSnapshot)."""
    net = Network()
    net.elect(1)
    _change(net, 1, ADD, 4)
    net[1].propose_entries([b"a", b"b"])
    net.stabilize()
    applied = net[1].raft.log.applied
    net.storages[1].create_snapshot(applied, net[1].raft.conf_state(), b"app-state")
    net.storages[1].compact(applied)
    net.add(4)
    net.tick(1)
    net.stabilize()
    assert net.storages[4].snapshot().index == applied
    assert net.storages[4].snapshot().data == b"app-state"
    assert net[4].raft.log.committed == applied
    net[1].propose(b"c")
    net.stabilize()
    assert net.applied_data(4) == [b"c"]


def test_6_removing_a_voter_lowers_the_quorum() -> None:
    """Thesis §4.1: after member 3 is removed, 1 and 2 are the whole cluster and commit alone."""
    net = Network(voters=(1, 2, 3, 4))
    net.elect(1)
    _change(net, 1, REMOVE, 4)
    assert net[1].raft.conf_state().voters == {1, 2, 3}
    net.isolate(3)
    net[1].propose(b"x")
    net.stabilize()
    assert net[1].raft.log.committed == net[1].raft.log.last_index()
    assert 4 not in net[1].status().progress


def test_6_a_removed_leader_steps_down() -> None:
    """Thesis §4.2.2: a leader that removes itself steps down once the change is applied (it managed
    the cluster while the change was committing), and the remaining voters elect a leader."""
    net = Network()
    net.elect(1)
    _change(net, 1, REMOVE, 1)
    assert (net.role(1), net[1].raft.conf_state().voters) == (Role.FOLLOWER, {2, 3})
    net.run_until(net.leaders, max_ticks=50)
    [leader] = net.leaders()
    assert leader in (2, 3) and net[leader].raft.conf_state().voters == {2, 3}


def test_6_a_removed_leader_hands_over_at_once() -> None:
    """Our extension (raft.py _step_down_after_removal): the removed leader sends TimeoutNow to an
    up-to-date voter so the cluster need not wait an election timeout. Messages here arrive in the
    order they were sent, before the receiver handles its Ready — as over one TCP stream to a member
    busy syncing its disk."""
    net = Network()
    net.elect(1)
    _change(net, 1, REMOVE, 1)
    assert any(m.type == MT.TIMEOUT_NOW and m.sender == 1 for m in net.delivered)
    assert net.role(1) == Role.FOLLOWER
    [leader] = net.leaders()  # no tick has passed: only the handover can have elected it
    assert leader in (2, 3)


def test_6_learners_do_not_count_toward_the_quorum() -> None:
    """Thesis §4.2.1: a non-voting member receives the log but is not counted for commitment."""
    net = Network(voters=(1, 2), learners=(3,))
    net.elect(1)
    net.isolate(2)
    net[1].propose(b"x")
    net.stabilize()
    assert net[3].raft.log.last_index() == 3  # the learner has x ...
    assert net[1].raft.log.committed == 2  # ... which does not make it committed
    net.heal()
    net.tick(1)
    net.stabilize()
    assert net[1].raft.log.committed == 3
    assert net.applied_data(3) == [b"x"]


def test_6_learners_neither_campaign_nor_are_asked_for_votes() -> None:
    """Thesis §4.2.1: non-voting members do not take part in elections."""
    net = Network(voters=(1, 2), learners=(3,))
    for _ in range(100):
        net.tick(3)
    assert net.process_ready(3) is None and net.role(3) == Role.FOLLOWER
    net[3].campaign()
    assert net.role(3) == Role.FOLLOWER and net[3].raft.term == 1
    net[1].campaign()
    net.process_ready(1)
    assert sorted(m.to for m in net.queue) == [2]


def test_6_promoting_a_learner_makes_it_count() -> None:
    net = Network(voters=(1, 2), learners=(3,))
    net.elect(1)
    _change(net, 1, ADD, 3)
    assert net[1].raft.conf_state() == (frozenset({1, 2, 3}), frozenset())
    assert net[3].raft.conf_state() == (frozenset({1, 2, 3}), frozenset())
    net.isolate(2)
    net[1].propose(b"x")
    net.stabilize()
    assert net[1].raft.log.committed == net[1].raft.log.last_index()  # 1 and 3 are 2 of 3


def test_6_demoting_a_voter_makes_it_a_learner() -> None:
    """A voter demoted to learner keeps receiving the log but no longer counts or campaigns."""
    net = Network()
    net.elect(1)
    _change(net, 1, LEARNER, 3)
    assert net[1].raft.conf_state() == (frozenset({1, 2}), frozenset({3}))
    assert net[3].raft.conf_state() == (frozenset({1, 2}), frozenset({3}))
    net.isolate(2)
    net[1].propose(b"x")
    net.stabilize()
    assert net[3].raft.log.last_index() == net[1].raft.log.last_index()
    assert net[1].raft.log.committed < net[1].raft.log.last_index()
    net[3].campaign()
    assert net.role(3) == Role.FOLLOWER


def test_6_one_membership_change_at_a_time() -> None:
    """Thesis §4.1: "the leader ... does not start a new configuration change until the previous one
    has been committed" — ours waits until it is applied, as etcd does."""
    net = Network()
    net.elect(1)
    net[1].propose_conf_change(ConfChange(ADD, 4))
    with pytest.raises(ProposalDropped):
        net[1].propose_conf_change(ConfChange(ADD, 5))
    net[1].propose(b"ordinary entries are fine")
    net.stabilize()
    net[1].propose_conf_change(ConfChange(ADD, 5))
    net.stabilize()
    assert net[1].raft.conf_state().voters == {1, 2, 3, 4, 5}


def test_6_a_new_leader_waits_for_its_predecessors_entries_before_a_change() -> None:
    """A new leader does not know whether its log holds an unapplied change of an earlier leader."""
    net = Network()
    net.elect(1)
    net[1].propose(b"x")
    net.process_ready(1)
    net.deliver(lambda m: m.to == 2)  # 2 has x, uncommitted
    net.process_ready(2)
    net.drop()
    net.isolate(1)
    net[2].campaign()
    net.process_ready(2)
    net.deliver(lambda m: m.type == MT.VOTE)
    net.process_ready(3)
    net.deliver(lambda m: m.type == MT.VOTE_RESP)
    assert net.role(2) == Role.LEADER
    with pytest.raises(ProposalDropped):
        net[2].propose_conf_change(ConfChange(REMOVE, 1))
    net.stabilize()
    net[2].propose_conf_change(ConfChange(REMOVE, 1))  # x and the new term's entry are applied now


def test_6_a_new_leader_proposes_no_change_before_its_term_entry_is_applied() -> None:
    """Ongaro's errata to single-server changes (raft-dev, 2015): "a leader may not append a new
    configuration entry until it has committed an entry from its current term." Member 2 has applied
    everything it holds, yet has not committed its own term's empty entry: a change must wait."""
    net = Network()
    net.elect(1)
    net[1].propose(b"x")
    net.stabilize()
    assert net[2].raft.log.applied == net[2].raft.log.last_index()
    net.isolate(1)
    net[2].campaign()
    net.process_ready(2)
    net.deliver(lambda m: m.type == MT.VOTE)
    net.process_ready(3)
    net.deliver(lambda m: m.type == MT.VOTE_RESP)
    assert net.role(2) == Role.LEADER
    assert net[2].raft.log.committed < net[2].raft.log.last_index()  # its empty entry is not committed
    with pytest.raises(ProposalDropped):
        net[2].propose_conf_change(ConfChange(REMOVE, 1))
    net.stabilize()
    net[2].propose_conf_change(ConfChange(REMOVE, 1))  # once it is applied, the change is accepted


def test_6_a_member_with_an_unapplied_change_does_not_campaign() -> None:
    """Like etcd: the committed change may alter who votes; campaigning before applying it could let
    two quorums form."""
    storage = founding_storage((1, 2, 3))
    node = RawNode(make_config(2), storage)
    change = Entry(2, 2, EntryType.CONF_CHANGE, ConfChange(REMOVE, 3).encode())
    node.step(Message(MT.APP, to=2, sender=1, term=2, index=1, log_term=1, entries=[change], commit=2))
    node.campaign()
    assert node.raft.role == Role.FOLLOWER
    drain(node, storage)  # applies the change
    assert node.raft.conf_state().voters == {1, 2}
    node.campaign()
    assert node.raft.role == Role.CANDIDATE


def test_6_removing_the_last_voter_is_refused() -> None:
    storage = founding_storage((1,))
    node = RawNode(make_config(1), storage)
    node.campaign()
    drain(node, storage)
    assert node.is_leader()
    with pytest.raises(ProposalDropped):
        node.propose_conf_change(ConfChange(REMOVE, 1))


# --- thesis §6.4 ReadIndex --------------------------------------------------------------------------


def test_6_4_read_index_waits_for_a_heartbeat_quorum() -> None:
    """Thesis §6.4: the leader records its commit index as the read index, then "sends a new round of
    heartbeats"; once a majority acknowledges, the read index is valid."""
    net = Network()
    net.elect(1)
    net[1].propose(b"x")
    net.stabilize()
    commit = net[1].raft.log.committed
    net[1].read_index(b"read-1")
    rd = net.process_ready(1)
    assert rd is not None and rd.read_states == []
    beats = [m for m in net.queue if m.type == MT.HEARTBEAT]
    assert sorted((m.to, m.context) for m in beats) == [(2, b"read-1"), (3, b"read-1")]
    net.drop(lambda m: m.to == 3)
    net.deliver()
    net.process_ready(2)
    net.deliver()  # 2's acknowledgement: with the leader, a majority
    net.process_ready(1)
    assert net.read_states[1] == [ReadState(commit, b"read-1")]


def test_6_4_a_leader_cut_off_from_the_majority_confirms_no_read() -> None:
    """Thesis §6.4: a deposed leader that does not know it yet must not serve stale reads."""
    net = Network()
    net.elect(1)
    net.isolate(1)
    net[1].read_index(b"read-1")
    for _ in range(30):
        net.tick(1)
        net.stabilize()
    assert net.read_states[1] == []


def test_6_4_the_read_quorum_catches_a_leader_that_skips_it() -> None:
    """The test above is sharp: with the bug switched on, the cut-off leader answers."""
    net = Network()
    net.elect(1)
    net.isolate(1)
    with bugs.injected(bugs.Bug.READ_WITHOUT_QUORUM):
        net[1].read_index(b"read-1")
    net.stabilize()
    assert net.read_states[1] != []


def test_6_4_a_follower_read_is_confirmed_by_the_leader() -> None:
    """Thesis §6.4: "the follower ... requests the current readIndex from the leader"; it then serves
    the read once it has applied that far."""
    net = Network()
    net.elect(1)
    net[1].propose(b"x")
    net.stabilize()
    net[3].read_index(b"read-3")
    net.stabilize()
    assert net.read_states[3] == [ReadState(net[1].raft.log.committed, b"read-3")]
    assert net.read_states[1] == []


def test_6_4_a_new_leader_answers_reads_only_after_committing_in_its_term() -> None:
    """Thesis §6.4: "the leader must have the latest information on which entries are committed ...
    Raft handles this by having each leader commit a blank no-op entry at the start of its term." A
    read arriving before that is held back, then answered with the new commit index."""
    net = Network()
    net[1].campaign()
    net.process_ready(1)
    net.deliver()
    net.process_all()
    net.deliver()
    assert net.role(1) == Role.LEADER and net[1].raft.log.committed == 1
    net[1].read_index(b"early")
    net.process_ready(1)
    assert not any(m.context == b"early" for m in net.queue)
    net.stabilize()
    assert net.read_states[1] == [ReadState(2, b"early")]


def test_6_4_a_single_voter_answers_at_once() -> None:
    storage = founding_storage((1,))
    node = RawNode(make_config(1), storage)
    node.campaign()
    drain(node, storage)
    node.read_index(b"solo")
    assert node.ready().read_states == [ReadState(2, b"solo")]


def test_6_4_reads_are_served_in_order() -> None:
    """Thesis §6.4: a quorum for a later heartbeat also confirms leadership for earlier reads."""
    net = Network()
    net.elect(1)
    net[1].read_index(b"first")
    net[1].read_index(b"second")
    net.process_ready(1)
    net.drop(lambda m: m.context == b"first")
    net.stabilize()
    assert net.read_states[1] == [ReadState(2, b"first"), ReadState(2, b"second")]


# --- thesis §9.6 pre-vote ----------------------------------------------------------------------------


def test_9_6_a_pre_vote_changes_no_term() -> None:
    """Thesis §9.6: "a candidate would first ask other servers whether its log was up-to-date enough to
    get their vote. Only if the candidate believed it could get votes from a majority ... would it
    increment its term and start a normal election." """
    net = Network(pre_vote=True)
    net[1].campaign()
    rd = net.process_ready(1)
    assert rd is not None and rd.hard_state is None  # nothing to persist: no term, no vote
    assert net.role(1) == Role.PRE_CANDIDATE and net[1].raft.term == 1
    assert sorted((m.type, m.to, m.term) for m in net.queue) == [(MT.PRE_VOTE, 2, 2), (MT.PRE_VOTE, 3, 2)]
    net.deliver()
    net.process_all()
    assert all(net[i].raft.term == 1 and net[i].raft.vote == NO_LEADER for i in (2, 3))
    grants = [m for m in net.queue if m.type == MT.PRE_VOTE_RESP]
    assert [(m.term, m.reject) for m in grants] == [(2, False), (2, False)]
    net.deliver()
    assert (net.role(1), net[1].raft.term, net[1].raft.vote) == (Role.CANDIDATE, 2, 1)
    net.stabilize()
    assert net.leaders() == [1]


def test_9_6_a_rejoining_member_does_not_disrupt_the_cluster() -> None:
    """Thesis §9.6: a server rejoining after a partition "will not be able to increment its term",
    so it cannot depose a healthy leader."""
    net = Network(pre_vote=True)
    net.elect(1)
    term = net[1].raft.term
    net.isolate(3)
    for _ in range(100):
        net.tick(3)
        net.stabilize()
    assert net[3].raft.term == term  # many pre-votes, no new term
    net.heal()
    net.run_until(lambda: net[3].leader_id == 1, max_ticks=50)
    assert net.leaders() == [1] and all(net[i].raft.term == term for i in (1, 2, 3))


def test_9_6_without_pre_vote_a_rejoining_member_disrupts_the_cluster() -> None:
    """The control for the test above: the plain protocol lets the isolated member inflate its term."""
    net = Network()
    net.elect(1)
    term = net[1].raft.term
    net.isolate(3)
    for _ in range(100):
        net.tick(3)
        net.stabilize()
    assert net[3].raft.term > term + 1
    net.heal()
    net.run_until(lambda: net[1].raft.term > term, max_ticks=50)  # 3's vote requests depose 1


def test_9_6_a_pre_candidate_refused_by_a_majority_goes_back_to_follower() -> None:
    storage = storage_with_log((1, 2, 3), [], hard_term=1)
    node = RawNode(make_config(1, pre_vote=True), storage)
    node.campaign()
    drain(node, storage)
    node.step(Message(MT.PRE_VOTE_RESP, to=1, sender=2, term=1, reject=True))
    node.step(Message(MT.PRE_VOTE_RESP, to=1, sender=3, term=1, reject=True))
    assert (node.raft.role, node.raft.term) == (Role.FOLLOWER, 1)


# --- thesis §6.2 check-quorum and §4.2.3 leader leases -------------------------------------------------


def test_6_2_a_leader_that_hears_from_no_majority_steps_down() -> None:
    """Thesis §6.2: "a leader steps down if an election timeout elapses without a successful round of
    heartbeats to a majority of its cluster." """
    net = Network(check_quorum=True)
    net.elect(1)
    net.isolate(1)
    for _ in range(2 * 10):  # the first check spends the activity seen before the partition
        net.tick(1)
    assert (net.role(1), net[1].leader_id) == (Role.FOLLOWER, NO_LEADER)


def test_6_2_a_leader_in_touch_with_a_majority_stays() -> None:
    net = Network(check_quorum=True)
    net.elect(1)
    net.isolate(3)
    for _ in range(100):
        net.tick(1)
        net.stabilize()
    assert net.role(1) == Role.LEADER


@pytest.mark.parametrize("kind", [MT.VOTE, MT.PRE_VOTE])
def test_4_2_3_a_follower_that_hears_from_a_leader_ignores_vote_requests(kind: MT) -> None:
    """Thesis §4.2.3: "if a server receives a RequestVote request within the minimum election timeout
    of hearing from a current leader, it does not update its term or grant its vote." """
    storage = founding_storage((1, 2, 3))
    node = RawNode(make_config(2, check_quorum=True), storage)
    node.step(Message(MT.HEARTBEAT, to=2, sender=1, term=2, commit=1))
    drain(node, storage)
    node.step(Message(kind, to=2, sender=3, term=5, index=9, log_term=9))
    assert (node.raft.term, node.raft.vote, node.leader_id) == (2, NO_LEADER, 1)
    assert drain(node, storage) == []
    for _ in range(10):  # the lease lasts one election timeout
        node.tick()
    node.step(Message(kind, to=2, sender=3, term=5, index=9, log_term=9))
    answers = [m for m in drain(node, storage) if m.to == 3]
    assert [m.reject for m in answers] == [False]


def test_4_2_3_a_leadership_transfer_overrides_the_lease() -> None:
    """Thesis §3.10: the vote request sent on TimeoutNow is granted even within a lease."""
    storage = founding_storage((1, 2, 3))
    node = RawNode(make_config(2, check_quorum=True), storage)
    node.step(Message(MT.HEARTBEAT, to=2, sender=1, term=2, commit=1))
    drain(node, storage)
    node.step(vote_request(3, 2, term=3, last_index=1, last_term=1, context=CAMPAIGN_TRANSFER))
    [answer] = drain(node, storage)
    assert (answer.type, answer.reject, node.raft.term, node.raft.vote) == (MT.VOTE_RESP, False, 3, 3)


# --- thesis §3.10 leadership transfer ----------------------------------------------------------------


def test_3_10_leadership_moves_to_an_up_to_date_follower() -> None:
    """Thesis §3.10: the leader sends TimeoutNow to an up-to-date target, which starts an election at
    once and wins — past check-quorum leases."""
    net = Network(check_quorum=True, pre_vote=True)
    net.elect(1)
    term = net[1].raft.term
    net[1].transfer_leadership(2)
    net.process_ready(1)
    assert [(m.type, m.to) for m in net.queue] == [(MT.TIMEOUT_NOW, 2)]
    net.stabilize()
    assert net.leaders() == [2]
    assert net[2].raft.term == term + 1
    assert (net.role(1), net[1].leader_id) == (Role.FOLLOWER, 2)


def test_3_10_a_lagging_target_is_caught_up_first() -> None:
    """Thesis §3.10: "the prior leader sends its log entries to the target server" before TimeoutNow."""
    net = Network()
    net.elect(1)
    net.isolate(3)
    net[1].propose(b"x")
    net.stabilize()
    net.heal()
    net[1].transfer_leadership(3)
    net.process_ready(1)
    assert [m.type for m in net.queue if m.to == 3] == [MT.APP]
    net.stabilize()
    assert net.leaders() == [3]
    assert net.applied_data(3) == [b"x"]


def test_3_10_proposals_are_dropped_during_a_transfer_until_it_is_aborted() -> None:
    """Thesis §3.10: the leader "stops accepting new client requests" while transferring; if the
    transfer does not complete within an election timeout, it aborts and resumes."""
    net = Network()
    net.elect(1)
    net.isolate(3)
    net[1].propose(b"x")
    net.stabilize()
    net[1].transfer_leadership(3)
    with pytest.raises(ProposalDropped):
        net[1].propose(b"y")
    for _ in range(10):
        net.tick(1)
        net.stabilize()
    net[1].propose(b"y")
    net.stabilize()
    assert net.applied_data(1) == [b"x", b"y"]


def test_3_10_a_transfer_requested_at_a_follower_names_the_target() -> None:
    """etcd forwards MsgTransferLeader from a follower to the leader unchanged (From is the target)."""
    net = Network()
    net.elect(1)
    net[2].transfer_leadership(3)
    net.stabilize()
    assert net.leaders() == [3]


@pytest.mark.parametrize("target", [1, 3, 9])
def test_3_10_a_transfer_to_itself_a_learner_or_a_stranger_is_ignored(target: int) -> None:
    net = Network(voters=(1, 2), learners=(3,))
    net.elect(1)
    net[1].transfer_leadership(target)
    assert net[1].raft.lead_transferee == NO_LEADER
    net[1].propose(b"still accepting")
    net.stabilize()
    assert net.leaders() == [1]


# --- dropped proposals -------------------------------------------------------------------------------


def test_a_proposal_without_a_known_leader_is_dropped() -> None:
    node = new_member(1)
    with pytest.raises(ProposalDropped, match="leader"):
        node.propose(b"x")


def test_a_candidate_drops_proposals() -> None:
    node = new_member(1)
    node.campaign()
    with pytest.raises(ProposalDropped):
        node.propose(b"x")


def test_a_follower_forwards_proposals_to_the_leader() -> None:
    net = Network()
    net.elect(1)
    net[3].propose(b"from-3")
    net.stabilize()
    assert [net.applied_data(i) for i in (1, 2, 3)] == [[b"from-3"]] * 3


def test_a_follower_that_does_not_forward_drops_proposals() -> None:
    net = Network(disable_proposal_forwarding=True)
    net.elect(1)
    with pytest.raises(ProposalDropped, match="forward"):
        net[2].propose(b"x")


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

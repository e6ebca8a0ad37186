"""Specification tests for electing a leader: the Raft paper (Ongaro & Ousterhout, "In Search of an
Understandable Consensus Algorithm") §5.1 terms, §5.2 leader election and §5.4.1 the election
restriction, and the extensions of Ongaro's thesis that guard elections: §9.6 pre-vote, §6.2
check-quorum and §4.2.3 leader leases.

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
    responses,
    storage_with_log,
)

from flotilla.raft import (
    NO_LEADER,
    Entry,
    HardState,
    Message,
    RawNode,
    Role,
    bugs,
)
from flotilla.raft.raft import CAMPAIGN_TRANSFER


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


@pytest.mark.parametrize("kind", [MT.VOTE, MT.APP_RESP, MT.VOTE_RESP])
def test_5_1_a_message_of_a_stale_term_is_ignored(kind: MT) -> None:
    """§5.1: "If a server receives a request with a stale term number, it rejects the request." A stale
    vote request or response is dropped without an answer (a stale leader's appends are answered:
    see the next test)."""
    storage = founding_storage((1, 2, 3))
    storage.set_hard_state(HardState(term=5, vote=0, commit=1))
    node = RawNode(make_config(1), storage)
    drain(node, storage)
    node.step(Message(kind, to=1, sender=2, term=4, index=1, log_term=1, entries=[Entry(4, 2)], commit=2))
    assert (node.raft.term, node.raft.role, node.leader_id) == (5, Role.FOLLOWER, NO_LEADER)
    assert node.raft.log.last_index() == 1
    assert not node.has_ready()


@pytest.mark.parametrize("extension", [{}, {"pre_vote": True}, {"check_quorum": True}])
def test_5_1_a_stale_leader_is_told_the_current_term(extension: dict) -> None:
    """§5.1: "If a candidate or leader discovers that its term is out of date, it immediately reverts to
    follower state." A member answers a stale leader's append with its term. (etcd answers only with
    pre-vote or check-quorum, counting otherwise on the member campaigning; a learner never does.)"""
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

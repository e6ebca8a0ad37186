"""Specification tests for linearizable reads and handing over leadership, from Ongaro's thesis:
§6.4 ReadIndex and §3.10 leadership transfer, plus when a proposal is dropped (ProposalDropped)
rather than forwarded or appended.

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
)

from flotilla.raft import (
    NO_LEADER,
    ProposalDropped,
    RawNode,
    ReadState,
    Role,
    bugs,
)

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

"""Specification tests for membership changes: the Raft paper's §6 as Ongaro's thesis §4.1 refines
it, one server at a time: adding and removing voters, learners, promotion and demotion, and one
change in flight at a time.

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
)

from flotilla.raft import (
    ConfChange,
    ConfChangePending,
    ConfChangeType,
    Entry,
    EntryType,
    Message,
    ProposalDropped,
    RawNode,
    Role,
)

ADD, REMOVE, LEARNER = ConfChangeType.ADD_NODE, ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER


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
    """Thesis §4.2.2: a leader that removes itself manages the cluster while the change commits, then
    gives way: the remaining voters have a leader of a later term, and the old one, hearing of it,
    steps down. (With check-quorum, a stale leader's heartbeat is answered with the newer term;
    without it, the removed member is shut down once its peers know, as etcd does.)"""
    net = Network(check_quorum=True)
    net.elect(1)
    _change(net, 1, REMOVE, 1)
    assert net[1].raft.conf_state().voters == {2, 3}
    net.run_until(lambda: [v for v in net.leaders() if v != 1], max_ticks=50)
    net.tick(1)  # a heartbeat of the old term: the answer carries the new one
    net.stabilize()
    [leader] = net.leaders()
    assert leader in (2, 3) and net[leader].raft.conf_state().voters == {2, 3}
    assert net.role(1) == Role.FOLLOWER and net[1].raft.term == net[leader].raft.term


def test_6_a_removed_leader_hands_over_at_once() -> None:
    """Our extension (raft.py _hand_over): the removed leader sends TimeoutNow to an up-to-date voter
    so the cluster need not wait an election timeout. Messages here arrive in the
    order they were sent, before the receiver handles its Ready — as over one TCP stream to a member
    busy syncing its disk."""
    net = Network()
    net.elect(1)
    _change(net, 1, REMOVE, 1)
    assert any(m.type == MT.TIMEOUT_NOW and m.sender == 1 for m in net.delivered)
    [leader] = [v for v in net.leaders() if v != 1]  # no tick has passed: only the handover elected it
    assert leader in (2, 3) and net[leader].raft.term > net[1].raft.term


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
    with pytest.raises(ConfChangePending):
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

"""One simulated run: a cluster, a client workload and faults from one seed, then a liveness check."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from flotilla.raft import (
    ConfChange,
    ConfChangeType,
    MemoryStorage,
    Message,
    ProposalDropped,
    bootstrap_snapshot,
)

from .config import MS, SimConfig
from .events import EventLoop
from .invariants import Checker, Violation
from .network import Network
from .node import PendingRead, SimNode

MAX_MEMBERS = 7
MAX_OUTSTANDING_WRITES = 16
WRITE_TIMEOUT_US = 2_000 * MS
STALL_US = 3_000 * MS  # after the load stops, every member must apply something this often


@dataclass
class Outcome:
    seed: int
    violation: str | None
    committed: int  # entries committed cluster-wide
    events: int
    virtual_s: float
    reads_checked: int
    writes_acked: int

    @property
    def ok(self) -> bool:
        return self.violation is None


class Simulation:
    def __init__(self, config: SimConfig, trace: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.loop = EventLoop()
        self.checker = Checker()
        self.network = Network(
            self.loop,
            self.rng,
            self._deliver,
            self._report_snapshot,
            (config.delay_min_us, config.delay_max_us),
            config.loss,
            config.duplicate,
            config.spike,
        )
        self.nodes: dict[int, SimNode] = {}
        self._trace = trace
        self._next_id = config.members + 1
        self._faulty = True
        self._liveness_values: set[bytes] = set()  # probe writes proposed after healing
        self._liveness_proposed_us = 0
        self._done = False
        self._deadline_us = config.fault_phase_us + config.liveness_bound_us
        self._hard_deadline_us = config.fault_phase_us + 20 * config.liveness_bound_us
        self._quiesced = False  # no more client writes: the liveness check waits for stragglers
        self._write_seq = 0
        self._read_seq = 0
        # value -> (member, incarnation, key, proposed at): like real clients, at most
        # MAX_OUTSTANDING_WRITES wait at once, and a write unanswered for WRITE_TIMEOUT_US is given up.
        self._pending_writes: dict[bytes, tuple[int, int, bytes, int]] = {}
        self.writes_acked = 0
        founders = set(range(1, config.members + 1))
        for member_id in sorted(founders):
            storage = MemoryStorage()
            storage.apply_snapshot(bootstrap_snapshot(founders))
            self._add_node(member_id, storage)

    def log(self, text: str) -> None:
        if self._trace is not None:
            self._trace(f"{self.loop.now_us / 1e6:9.6f} {text}")

    # --- the run ----------------------------------------------------------------------------------
    def run(self) -> Outcome:
        cfg = self.config
        violation = None
        self._schedule_faults()
        self.loop.call_later(cfg.write_interval_us, self._client_write)
        self.loop.call_later(cfg.read_interval_us, self._client_read)
        self.loop.call_at(cfg.fault_phase_us, self._heal)
        try:
            while not self._done:
                next_us = self.loop.next_time_us()
                if next_us is None or next_us > self._deadline_us:
                    raise Violation(self._liveness_failure())
                self.checker.now_us = next_us
                self.loop.run_one()
        except Violation as exc:
            violation = str(exc)
        return Outcome(
            cfg.seed,
            violation,
            self.checker.max_committed,
            self.loop.events_run,
            self.loop.now_us / 1e6,
            self.checker.reads_checked,
            self.writes_acked,
        )

    def _member_states(self) -> str:
        return ", ".join(
            f"{n.id}:{'up' if n.alive else 'removed' if n.removed else 'down'}"
            f"/{n.raw.raft.role.name}/t{n.raw.raft.term}/c{n.raw.raft.log.committed}/a{n.sm.applied}"
            for n in self.nodes.values()
        )

    def _liveness_failure(self) -> str:
        healed = f"healing at {self.config.fault_phase_us / 1e6:.3f}s"
        if not self._quiesced:
            bound_s = self.config.liveness_bound_us / 1e6
            what = f"no leader committed a new entry within {bound_s:.1f}s of {healed}"
        else:
            what = f"the members did not all catch up by {self._hard_deadline_us / 1e6:.0f}s"
        return f"liveness: {what} (members {self._member_states()})"

    # --- members ----------------------------------------------------------------------------------
    def _add_node(self, member_id: int, storage: MemoryStorage) -> SimNode:
        node = SimNode(member_id, self, storage)
        self.nodes[member_id] = node
        node.start()
        return node

    def _deliver(self, m: Message) -> None:
        if self._trace is not None:
            self.log(f"  {m.sender}->{m.to} {_show_message(m)}")
        node = self.nodes.get(m.to)
        if node is None:
            return
        if m.sender in node.removed_ids:
            # etcd's transport refuses a removed member and tells it so; it then shuts down.
            sender = self.nodes[m.sender]
            if sender.alive:
                self.log(f"member {m.sender} shuts down: member {m.to} refused it as removed")
                sender.shut_down()
            return
        node.deliver(m)

    def _report_snapshot(self, m: Message, delivered: bool) -> None:
        node = self.nodes.get(m.sender)
        if node is None or not node.alive:
            return
        if node.busy:  # the member is mid-Ready: hand it over once that is done
            self.loop.call_later(MS, self._report_snapshot, m, delivered)
            return
        node.raw.report_snapshot(m.to, delivered)
        node._drain()

    def _live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.alive]

    def _leader(self) -> SimNode | None:
        leaders = [n for n in self._live() if n.raw.is_leader()]
        return max(leaders, key=lambda n: n.raw.raft.term) if leaders else None

    def on_conf_change_applied(self, node: SimNode, change: ConfChange) -> None:
        if (
            change.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER)
            and change.node_id not in self.nodes
        ):
            self.log(f"member {change.node_id} joins (empty storage)")
            self._add_node(change.node_id, MemoryStorage())

    def reap_when_peers_know(self, node: SimNode) -> None:
        """A removed member stops once every remaining voter has applied its removal: etcd peers
        answer a removed member "removed" and it shuts down. Until then they may need its vote."""
        if not node.alive:
            return
        voters = [n for n in self._live() if n.id != node.id and n.id in n.raw.raft.voters]
        if voters and all(node.id not in n.raw.raft.conf_state().members() for n in voters):
            self.log(f"member {node.id} shuts down: its removal is known")
            node.shut_down()
            return
        self.loop.call_later(100 * MS, self.reap_when_peers_know, node)

    def on_write_applied(self, node: SimNode, key: bytes, value: bytes, index: int) -> None:
        pending = self._pending_writes.get(value)
        if pending is not None and pending[0] == node.id and pending[1] == node.incarnation:
            del self._pending_writes[value]
            self.checker.write_acked(key, index)
            self.writes_acked += 1
        if value in self._liveness_values:
            self._check_liveness_done()

    # --- client workload --------------------------------------------------------------------------
    def _client_write(self) -> None:
        if self._done or self._quiesced:
            return
        self.loop.call_later(self.config.write_interval_us, self._client_write)
        live = self._live()
        if not live or not self._room_for_a_write():
            return
        node = self.rng.choice(live)
        self._write_seq += 1
        key = b"k%d" % self.rng.randrange(self.config.keys)
        value = b"v%d" % self._write_seq
        try:
            node.raw.propose(b"put " + key + b" " + value)
        except ProposalDropped:
            return
        self._pending_writes[value] = (node.id, node.incarnation, key, self.loop.now_us)
        node._drain()

    def _room_for_a_write(self) -> bool:
        if len(self._pending_writes) < MAX_OUTSTANDING_WRITES:
            return True
        oldest = min(self._pending_writes, key=lambda v: self._pending_writes[v][3])
        if self.loop.now_us - self._pending_writes[oldest][3] > WRITE_TIMEOUT_US:
            del self._pending_writes[oldest]  # in doubt: it may still commit, but nobody waits
            return True
        return False

    def _client_read(self) -> None:
        if self._done:
            return
        self.loop.call_later(self.config.read_interval_us, self._client_read)
        live = self._live()
        if not live:
            return
        node = self.rng.choice(live)
        self._read_seq += 1
        ctx = b"read-%d" % self._read_seq
        key = b"k%d" % self.rng.randrange(self.config.keys)
        node.reads[ctx] = PendingRead(key, self.checker.read_started(key))
        node.raw.read_index(ctx)
        node._drain()

    # --- faults -----------------------------------------------------------------------------------
    def _schedule_faults(self) -> None:
        cfg = self.config
        for rate, action in (
            (cfg.partition_rate_per_s, self._partition),
            (cfg.swizzle_rate_per_s, self._swizzle),
            (cfg.crash_rate_per_s, self._crash),
            (cfg.membership_rate_per_s, self._change_membership),
            (cfg.transfer_rate_per_s, self._transfer_leadership),
        ):
            if rate > 0:
                self._schedule_next(rate, action)
        if cfg.new_leader_crash > 0:
            self.loop.call_later(5 * MS, self._watch_new_leaders, (0, 0))

    def _watch_new_leaders(self, last: tuple[int, int]) -> None:
        # Kill a leader right after its election, before it replicates much: its uncommitted entry
        # of a new term is what Figure 8 of the raft paper needs.
        if not self._faulty:
            return
        leader = self._leader()
        if leader is not None and (leader.raw.raft.term, leader.id) != last:
            last = (leader.raw.raft.term, leader.id)
            if self.rng.random() < self.config.new_leader_crash:
                self.loop.call_later(
                    self.rng.randrange(30 * MS), self._crash_member, leader.id, leader.incarnation
                )
        self.loop.call_later(5 * MS, self._watch_new_leaders, last)

    def _crash_member(self, member_id: int, incarnation: int) -> None:
        node = self.nodes[member_id]
        if node.alive and node.incarnation == incarnation and self._faulty:
            self._crash_node(node)

    def _schedule_next(self, rate_per_s: float, action: Callable[[], None]) -> None:
        delay_us = int(self.rng.expovariate(rate_per_s) * 1_000_000) + 1
        if self.loop.now_us + delay_us < self.config.fault_phase_us:
            self.loop.call_later(delay_us, self._fault, rate_per_s, action)

    def _fault(self, rate_per_s: float, action: Callable[[], None]) -> None:
        if not self._faulty:
            return
        action()
        self._schedule_next(rate_per_s, action)

    def _partition(self) -> None:
        ids = sorted(self.nodes)
        if len(ids) < 2:
            return
        leader = self._leader()
        if leader is not None and self.rng.random() < 0.5:
            side = {leader.id}  # isolating the leader is the partition that tests the most
        else:
            side = set(self.rng.sample(ids, self.rng.randrange(1, len(ids))))
        rest = set(ids) - side
        one_way = self.rng.random() < self.config.asymmetric
        before = set(self.network.blocked)
        self.network.partition(side, rest, one_way)
        added = self.network.blocked - before
        self.log(f"partition {sorted(side)} {'-/->' if one_way else '<-/->'} {sorted(rest)}")
        duration = self.rng.randrange(10 * MS, self.config.partition_max_us)
        self.loop.call_later(duration, self._unblock, added)

    def _unblock(self, links: set[tuple[int, int]]) -> None:
        self.network.unblock(links)
        self.log(f"partition healed ({len(links)} links)")

    def _swizzle(self) -> None:
        # Clog the links of a random subset one member at a time, then unclog in reverse order.
        ids = sorted(self.nodes)
        subset = self.rng.sample(ids, self.rng.randrange(1, len(ids) + 1))
        self.log(f"swizzle-clog {subset}")
        links = [(a, b) for a in subset for b in ids if a != b] + [
            (b, a) for a in subset for b in ids if a != b
        ]
        step_us = 5 * MS
        for i, link in enumerate(links):
            self.loop.call_later(i * step_us, self.network.clog, link)
        hold = len(links) * step_us + self.rng.randrange(10 * MS, 500 * MS)
        for i, link in enumerate(reversed(links)):
            self.loop.call_later(hold + i * step_us, self.network.unclog, link)

    def _crash(self) -> None:
        live = [n for n in self._live() if not n.removed]
        if not live:
            return
        leader = self._leader()
        node = leader if leader is not None and self.rng.random() < 0.5 else self.rng.choice(live)
        self._crash_node(node)

    def _crash_node(self, node: SimNode) -> None:
        node.crash()
        self.log(f"crash {node.id}")
        self.loop.call_later(self.rng.randrange(10 * MS, self.config.down_max_us), self._restart, node)

    def _restart(self, node: SimNode) -> None:
        if node.alive or node.removed:
            return
        self.log(f"restart {node.id}")
        node.start()

    def _change_membership(self) -> None:
        leader = self._leader()
        if leader is None:
            return
        raft = leader.raw.raft
        voters, learners = sorted(raft.voters), sorted(raft.learners)
        choices = []
        if len(voters) + len(learners) < MAX_MEMBERS:
            choices += ["add-voter", "add-learner"]
        if learners:
            choices += ["promote", "remove-learner"]
        if len(voters) > 1:  # down to a single voter, which must then stand alone
            choices += ["remove-voter", "demote-voter"]
        if not choices:
            return
        choice = self.rng.choice(choices)
        if choice in ("add-voter", "add-learner"):
            node_id = self._next_id
            kind = ConfChangeType.ADD_NODE if choice == "add-voter" else ConfChangeType.ADD_LEARNER
        elif choice == "promote":
            node_id, kind = self.rng.choice(learners), ConfChangeType.ADD_NODE
        elif choice == "remove-learner":
            node_id, kind = self.rng.choice(learners), ConfChangeType.REMOVE_NODE
        elif choice == "demote-voter":
            node_id, kind = self.rng.choice(voters), ConfChangeType.ADD_LEARNER
        else:
            node_id, kind = self.rng.choice(voters), ConfChangeType.REMOVE_NODE
        try:
            leader.raw.propose_conf_change(ConfChange(kind, node_id))
        except ProposalDropped:
            return
        if node_id == self._next_id:
            self._next_id += 1
        self.log(f"propose {kind.name} {node_id} at leader {leader.id}")
        leader._drain()

    def _transfer_leadership(self) -> None:
        leader = self._leader()
        if leader is None:
            return
        others = [v for v in sorted(leader.raw.raft.voters) if v != leader.id]
        if others:
            target = self.rng.choice(others)
            # Half the requests go to a follower, which forwards them to the leader.
            followers = [n for n in self._live() if n.id != leader.id and not n.removed]
            asked = self.rng.choice(followers) if followers and self.rng.random() < 0.5 else leader
            self.log(f"transfer leadership {leader.id} -> {target} (asked at {asked.id})")
            asked.raw.transfer_leadership(target)
            asked._drain()

    # --- liveness ---------------------------------------------------------------------------------
    def _heal(self) -> None:
        self._faulty = False
        self.network.heal(max_delay_us=self.config.tick_us)  # a tenth of the election timeout
        self.log("heal: network reliable, crashed members restart")
        for node in self.nodes.values():
            if not node.alive and not node.removed:
                node.start()
        self.loop.call_later(50 * MS, self._liveness_probe)

    def _current_conf(self):
        # The configuration of the most advanced live member; others still believing in an older
        # one (removed while cut off) are shut down, as an etcd member is when peers refuse it.
        newest = max(self._live(), key=lambda n: n.sm.applied)
        return newest.raw.raft.conf_state()

    def _current_members(self) -> set[int]:
        return set(self._current_conf().members())

    def _liveness_probe(self) -> None:
        if self._done:
            return
        self.loop.call_later(50 * MS, self._liveness_probe)
        leader = self._leader()
        if leader is None:
            return
        # Propose a probe write, and again (as a client would retry) if the last one may be lost.
        if not self._quiesced and self.loop.now_us - self._liveness_proposed_us >= 500 * MS:
            value = b"liveness-%d" % (len(self._liveness_values) + 1)
            try:
                leader.raw.propose(b"put live " + value)
            except ProposalDropped:
                return
            self._liveness_values.add(value)
            self._liveness_proposed_us = self.loop.now_us
            leader._drain()
        self._check_liveness_done()

    def _has_probe(self, node: SimNode) -> bool:
        return node.sm.kv.get(b"live", (b"",))[0] in self._liveness_values

    def _watch_catch_up(self, progress: dict[int, tuple[int, int]]) -> None:
        # Stragglers catch up at whatever rate the configuration allows (one entry per round trip
        # in the slowest seeds), so the bound is on each one stalling, not on finishing.
        if self._done:
            return
        now = self.loop.now_us
        updated: dict[int, tuple[int, int]] = {}
        for member_id in sorted(self._current_members()):
            node = self.nodes[member_id]
            if not node.alive or self._has_probe(node):
                continue
            applied, since = progress.get(member_id, (-1, now))
            if node.sm.applied != applied:
                applied, since = node.sm.applied, now
            elif now - since > STALL_US:
                raise Violation(
                    f"liveness: member {member_id} stopped catching up at applied index {applied} for "
                    f"{STALL_US / 1e6:.0f}s after the client load stopped ({self._member_states()})"
                )
            updated[member_id] = (applied, since)
        self.loop.call_later(STALL_US // 4, self._watch_catch_up, updated)

    def _check_liveness_done(self) -> None:
        if not self._liveness_values:
            return
        # First a quorum of voters must apply the probe (it committed). Then the client load stops
        # and every member must catch up: under load, a learner or a voter behind a slow link may
        # lag for as long as the load lasts, but a member that never catches up is a bug.
        conf = self._current_conf()
        has_probe = [i for i in conf.members() if self.nodes[i].alive and self._has_probe(self.nodes[i])]
        if not self._quiesced and sum(1 for i in has_probe if i in conf.voters) > len(conf.voters) // 2:
            self._quiesced = True
            self.log("liveness: a quorum applied the probe write; client load stops")
            self._deadline_us = self._hard_deadline_us
            members = self._current_members()
            for node in self._live():
                if node.id not in members:
                    node.shut_down()  # removed while cut off: its peers refuse it from now on
            self._watch_catch_up({})
        if self._quiesced and len(has_probe) == len(conf.members()):
            self._done = True
            self.log("liveness: every member applied the probe write")


def _show_message(m: Message) -> str:
    text = f"{m.type.name} t{m.term}"
    if m.type.name in ("APP", "VOTE", "PRE_VOTE"):
        text += f" log={m.index}/{m.log_term}"
    if m.entries:
        text += f" entries={m.entries[0].index}..{m.entries[-1].index}"
    if m.commit:
        text += f" commit={m.commit}"
    if m.type.name.endswith("RESP"):
        text += f" index={m.index}" + (f" REJECT hint={m.reject_hint}/{m.log_term}" if m.reject else "")
    if m.snapshot is not None:
        text += f" snap={m.snapshot.index}/{m.snapshot.term}"
    if m.context:
        text += f" ctx={m.context.decode(errors='replace')}"
    return text

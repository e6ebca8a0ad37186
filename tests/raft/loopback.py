"""Members and a loopback network for the raft specification tests.

``Network`` plays the application around each ``RawNode`` exactly as the ``Ready`` docstring says:
queue ``messages``, persist snapshot, entries and hard state into a ``MemoryStorage``, only then queue
``messages_after_persist``, apply committed entries (handing CONF_CHANGE entries to
``apply_conf_change``), and ``advance``. Messages wait in ``queue`` until a test delivers them, so a
test decides what arrives, what is lost and in which order.

Unless a test says otherwise members run the plain protocol of the paper (no pre-vote, no
check-quorum): the extensions get their own tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from flotilla.raft import (
    ConfChange,
    Config,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    ReadState,
    Ready,
    Role,
    bootstrap_snapshot,
)

MT = MessageType
PLAIN = {"pre_vote": False, "check_quorum": False}


def make_config(member_id: int, seed: int | None = None, **overrides: object) -> Config:
    options: dict[str, object] = {"election_timeout_ticks": 10, "heartbeat_interval_ticks": 1, **PLAIN}
    options.update(overrides)
    rng = random.Random(member_id if seed is None else seed)
    return Config(id=member_id, rng=rng, **options)  # type: ignore[arg-type]


def founding_storage(voters: Iterable[int], learners: Iterable[int] = ()) -> MemoryStorage:
    """A founding member's storage: empty, then the bootstrap snapshot (index 1, term 1)."""
    storage = MemoryStorage()
    storage.apply_snapshot(bootstrap_snapshot(frozenset(voters), frozenset(learners)))
    return storage


def storage_with_log(voters: Iterable[int], terms: list[int], hard_term: int | None = None) -> MemoryStorage:
    """Founding storage followed by entries 2, 3, ... of the given terms (a log a past leader left)."""
    storage = founding_storage(voters)
    storage.append([Entry(term, index) for index, term in enumerate(terms, 2)])
    term = max([1, *terms]) if hard_term is None else hard_term
    storage.set_hard_state(HardState(term, 0, 1))
    return storage


def new_member(member_id: int, voters: Iterable[int] = (1, 2, 3), **overrides: object) -> RawNode:
    return RawNode(make_config(member_id, **overrides), founding_storage(voters))


def persist(storage: MemoryStorage, rd: Ready) -> None:
    """Step 2 of the Ready contract."""
    if rd.snapshot is not None:
        storage.apply_snapshot(rd.snapshot)
    storage.append(rd.entries)
    if rd.hard_state is not None:
        storage.set_hard_state(rd.hard_state)


def drain(node: RawNode, storage: MemoryStorage) -> list[Message]:
    """Handle every pending Ready of a lone member; returns what it sent, in sending order."""
    sent: list[Message] = []
    while node.has_ready():
        rd = node.ready()
        sent.extend(rd.messages)
        persist(storage, rd)
        sent.extend(rd.messages_after_persist)
        for entry in rd.committed_entries:
            if entry.type == EntryType.CONF_CHANGE:
                node.apply_conf_change(ConfChange.decode(entry.data))
        node.advance(rd)
    return sent


def responses(sent: list[Message], kind: MT) -> list[Message]:
    """The messages of one kind among ``sent``."""
    return [m for m in sent if m.type == kind]


class Network:
    """Members that talk through a queue the test controls."""

    def __init__(self, voters: Iterable[int] = (1, 2, 3), learners: Iterable[int] = (), **overrides: object):
        self.voters = frozenset(voters)
        self.learners = frozenset(learners)
        self.overrides = overrides
        self.nodes: dict[int, RawNode] = {}
        self.storages: dict[int, MemoryStorage] = {}
        self.applied: dict[int, list[Entry]] = {}
        self.read_states: dict[int, list[ReadState]] = {}
        self.queue: list[Message] = []
        self.delivered: list[Message] = []  # every message delivered so far, in order
        self.isolated: set[int] = set()
        for member_id in sorted(self.voters | self.learners):
            self.add(member_id, founding_storage(self.voters, self.learners))

    # --- members --------------------------------------------------------------------------------
    def add(self, member_id: int, storage: MemoryStorage | None = None, **overrides: object) -> RawNode:
        """Start a member from ``storage`` (an empty one: a member that joins later)."""
        storage = MemoryStorage() if storage is None else storage
        options = {**self.overrides, **overrides}
        self.storages[member_id] = storage
        self.applied.setdefault(member_id, [])
        self.read_states.setdefault(member_id, [])
        node = RawNode(make_config(member_id, **options), storage)
        self.nodes[member_id] = node
        return node

    def restart(self, member_id: int, **overrides: object) -> RawNode:
        """Rebuild a member from its storage: volatile state and undelivered messages are lost."""
        self.take(lambda m: m.sender == member_id)
        self.drop(lambda m: m.to == member_id)
        self.applied[member_id] = []
        return self.add(member_id, self.storages[member_id], applied=0, **overrides)

    def __getitem__(self, member_id: int) -> RawNode:
        return self.nodes[member_id]

    def role(self, member_id: int) -> Role:
        return self.nodes[member_id].raft.role

    def leaders(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.raft.role == Role.LEADER]

    def log(self, member_id: int) -> list[tuple[int, int]]:
        """(index, term) of every entry the member holds after its snapshot, persisted or not."""
        raft_log = self.nodes[member_id].raft.log
        return [(e.index, e.term) for e in raft_log.entries(raft_log.first_index())]

    def applied_data(self, member_id: int) -> list[bytes]:
        return [e.data for e in self.applied[member_id] if e.type == EntryType.NORMAL and e.data]

    # --- the Ready loop ---------------------------------------------------------------------------
    def process_ready(self, member_id: int) -> Ready | None:
        """Handle one Ready of ``member_id`` as its contract says; None if it had nothing."""
        node, storage = self.nodes[member_id], self.storages[member_id]
        if not node.has_ready():
            return None
        rd = node.ready()
        self.queue.extend(rd.messages)
        persist(storage, rd)
        self.queue.extend(rd.messages_after_persist)
        for entry in rd.committed_entries:
            self.applied[member_id].append(entry)
            if entry.type == EntryType.CONF_CHANGE:
                node.apply_conf_change(ConfChange.decode(entry.data))
        self.read_states[member_id].extend(rd.read_states)
        node.advance(rd)
        return rd

    def process_all(self) -> bool:
        moved = False
        for member_id in sorted(self.nodes):
            while self.process_ready(member_id) is not None:
                moved = True
        return moved

    # --- delivery -------------------------------------------------------------------------------
    def take(self, keep: Callable[[Message], bool] = lambda m: True) -> list[Message]:
        """Remove and return the queued messages ``keep`` selects."""
        taken = [m for m in self.queue if keep(m)]
        self.queue = [m for m in self.queue if not keep(m)]
        return taken

    def drop(self, keep: Callable[[Message], bool] = lambda m: True) -> None:
        for m in self.take(keep):
            self._lost(m)

    def _lost(self, m: Message) -> None:
        if m.type == MT.SNAP and m.sender in self.nodes:
            # The transport reports a lost snapshot, as etcd's does: the leader must not wait forever.
            self.nodes[m.sender].report_snapshot(m.to, delivered=False)

    def deliver(self, keep: Callable[[Message], bool] = lambda m: True) -> int:
        """Deliver the queued messages ``keep`` selects (those to or from isolated members are lost)."""
        count = 0
        for m in self.take(keep):
            if m.to in self.isolated or m.sender in self.isolated or m.to not in self.nodes:
                self._lost(m)
                continue
            self.nodes[m.to].step(m)
            self.delivered.append(m)
            count += 1
            if m.type == MT.SNAP and m.sender in self.nodes:
                # The transport reports a delivered snapshot, as etcd's does.
                self.nodes[m.sender].report_snapshot(m.to, delivered=True)
        return count

    def stabilize(self, max_rounds: int = 200) -> None:
        """Process Readys and deliver messages until nothing moves."""
        for _ in range(max_rounds):
            moved = self.process_all()
            if self.queue:
                self.deliver()
                moved = True
            if not moved:
                return
        raise AssertionError(f"no quiescence after {max_rounds} rounds; queue: {self.queue[:5]}")

    def isolate(self, member_id: int) -> None:
        self.isolated.add(member_id)

    def heal(self) -> None:
        self.isolated.clear()

    # --- conveniences -----------------------------------------------------------------------------
    def elect(self, member_id: int) -> None:
        self.nodes[member_id].campaign()
        self.stabilize()
        assert self.role(member_id) == Role.LEADER, f"{member_id} did not win: {self.role(member_id)!r}"

    def tick(self, member_id: int, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.nodes[member_id].tick()

    def tick_all(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            for member_id in sorted(self.nodes):
                if member_id not in self.isolated:
                    self.nodes[member_id].tick()

    def run_until(self, done: Callable[[], bool], max_ticks: int = 500) -> int:
        """Tick every reachable member and stabilize, one tick at a time, until ``done()``; returns
        the ticks taken."""
        for count in range(1, max_ticks + 1):
            self.tick_all()
            self.stabilize()
            if done():
                return count
        raise AssertionError(f"not done after {max_ticks} ticks")

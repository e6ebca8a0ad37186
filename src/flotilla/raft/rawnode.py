"""RawNode: the application's handle on one raft member (etcd's RawNode, in Python).

Drive it with ``tick()`` on a timer, ``step()`` for every message from a peer, and the propose/read
methods for clients; then loop ``while node.has_ready(): rd = node.ready(); ...; node.advance(rd)``,
handling each Ready as its docstring says (``flotilla.raft.types.Ready``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .errors import ProposalDropped, RaftError
from .raft import Raft
from .storage import Storage
from .types import (
    LOCAL_MESSAGE_TYPES,
    NO_LEADER,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Ready,
    Role,
    SoftState,
)

# Responses that only make sense from a member whose progress the leader tracks.
_RESPONSE_TYPES = frozenset(
    {MessageType.APP_RESP, MessageType.VOTE_RESP, MessageType.PRE_VOTE_RESP, MessageType.HEARTBEAT_RESP}
)


@dataclass(frozen=True, slots=True)
class Progress:
    """A copy of what the leader knows about one member (see ``RawNode.status``)."""

    match: int
    next: int
    state: str
    is_learner: bool


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    last_index: int
    conf_state: ConfState
    progress: dict[int, Progress]  # empty unless this member leads


class RawNode:
    def __init__(self, config: Config, storage: Storage) -> None:
        self.raft = Raft(config, storage)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()

    # --- inputs -----------------------------------------------------------------------------------
    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (with pre-vote if configured), as if the election timer fired."""
        self.raft.step(Message(MessageType.HUP, sender=self.raft.id))

    def propose(self, data: bytes) -> None:
        """Propose one entry. Raises ProposalDropped when it cannot be appended (no leader known,
        transfer under way, removed member); a dropped proposal is never committed."""
        self.propose_entries([data])

    def propose_entries(self, batch: list[bytes]) -> None:
        """Propose several entries in one message: they are appended and replicated together."""
        normal = EntryType.NORMAL  # hoisted: an Enum attribute read is slow on Python 3.11
        entries = [Entry(0, 0, normal, data) for data in batch]
        self.raft.step(Message(MessageType.PROP, sender=self.raft.id, entries=entries))

    def propose_conf_change(self, change: ConfChange) -> None:
        entry = Entry(0, 0, EntryType.CONF_CHANGE, change.encode())
        self.raft.step(Message(MessageType.PROP, sender=self.raft.id, entries=[entry]))

    def read_index(self, request_ctx: bytes) -> None:
        """Ask for a linearizable read point; a ReadState with the same (unique) context comes
        back in a later Ready. Without a leader the request is dropped: retry on a timeout."""
        if not request_ctx:
            raise ValueError("read_index needs a non-empty, unique request context")
        self.raft.step(Message(MessageType.READ_INDEX, sender=self.raft.id, entries=[], context=request_ctx))

    def transfer_leadership(self, transferee: int) -> None:
        """Ask the leader to hand over to ``transferee`` (raft thesis §3.10)."""
        self.raft.step(Message(MessageType.TRANSFER_LEADER, sender=transferee))

    def step(self, m: Message) -> None:
        """Hand over a message received from a peer."""
        if m.type in LOCAL_MESSAGE_TYPES:
            raise RaftError(f"{m.type.name} is a local message; it cannot arrive from the network")
        if m.type in _RESPONSE_TYPES and m.sender not in self.raft.prs:
            return  # a response from a member we no longer track
        try:
            self.raft.step(m)
        except ProposalDropped:
            pass  # a proposal forwarded to us in vain: its proposer retries on its own timeout

    def report_unreachable(self, member_id: int) -> None:
        self.raft.step(Message(MessageType.UNREACHABLE, sender=member_id))

    def report_snapshot(self, member_id: int, delivered: bool) -> None:
        """Tell the leader whether the InstallSnapshot to ``member_id`` got through."""
        self.raft.step(Message(MessageType.SNAP_STATUS, sender=member_id, reject=not delivered))

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        """Apply a committed CONF_CHANGE entry (call it while applying that entry)."""
        return self.raft.apply_conf_change(change)

    # --- outputs ----------------------------------------------------------------------------------
    def has_ready(self) -> bool:
        r = self.raft
        log = r.log
        return bool(
            r.msgs
            or r.msgs_after_persist
            or r.read_states
            or log.unstable_snapshot is not None
            or log.stable_last_index() < log.last_index()
            or log.has_next_committed_entries()
            # soft_state() and hard_state() field by field: has_ready() runs after every step, and
            # building the two NamedTuples was a fifth of its cost (a plain tuple compares equal to one).
            or (r.leader_id, r.role) != self._prev_soft
            or (r.term, r.vote, log.committed) != self._prev_hard
        )

    def ready(self) -> Ready:
        """What to persist, send and apply now; see ``Ready`` for the order. Call ``advance`` after."""
        r = self.raft
        rd = Ready(
            entries=r.log.unstable_entries(),
            snapshot=r.log.unstable_snapshot,
            committed_entries=r.log.next_committed_entries(),
            messages=r.msgs,
            messages_after_persist=r.msgs_after_persist,
            read_states=r.read_states,
        )
        r.msgs, r.msgs_after_persist, r.read_states = [], [], []
        soft = r.soft_state()
        if soft != self._prev_soft:
            rd.soft_state = self._prev_soft = soft
        hard = r.hard_state()
        if hard != self._prev_hard:
            if hard.term != self._prev_hard.term or hard.vote != self._prev_hard.vote:
                # Every message carries the term; none may leave before it is durable (a leader of a
                # cluster of one wins before persisting its vote, and a crash then would let it lead
                # the same term twice).
                rd.messages_after_persist = rd.messages + rd.messages_after_persist
                rd.messages = []
                rd.term_or_vote_changed = True
            rd.hard_state = self._prev_hard = hard
        return rd

    def advance(self, rd: Ready) -> None:
        """The Ready was handled: persisted, sent and applied."""
        r = self.raft
        if rd.snapshot is not None:
            r.log.stable_snapshot_to(rd.snapshot.index)
            r.log.applied = max(r.log.applied, rd.snapshot.index)
        if rd.entries:
            last = rd.entries[-1]
            r.log.stable_to(last.index, last.term)
            r.on_persisted(last.index, last.term)
        if rd.committed_entries:
            r.log.applied_to(rd.committed_entries[-1].index)
            r.on_applied()

    # --- status -----------------------------------------------------------------------------------
    def status(self) -> Status:
        r = self.raft
        progress = {}
        if r.role == Role.LEADER:
            progress = {
                member_id: Progress(pr.match, pr.next, pr.state.name, pr.is_learner)
                for member_id, pr in r.prs.items()
            }
        return Status(
            r.id,
            r.hard_state(),
            r.soft_state(),
            r.log.applied,
            r.log.last_index(),
            r.conf_state(),
            progress,
        )

    @property
    def leader_id(self) -> int:
        return self.raft.leader_id

    def is_leader(self) -> bool:
        return self.raft.role == Role.LEADER and self.raft.leader_id != NO_LEADER

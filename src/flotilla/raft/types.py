"""Values that cross the raft core's boundary: entries, messages, states, snapshots and Ready.

Everything here is plain data. Entries and states are immutable tuples; messages are mutable only while
the core builds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

NO_LEADER = 0
"""Node ids are positive integers; 0 means "nobody" (no leader, no vote)."""


class EntryType(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class Entry(NamedTuple):
    """One log entry. An empty NORMAL entry is what a new leader appends to commit its term."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


class MessageType(IntEnum):
    # Local messages: never sent over the network.
    HUP = 0  # start an election (tick or campaign())
    BEAT = 1  # leader: send heartbeats now
    PROP = 2  # a proposal; forwarded to the leader by followers
    CHECK_QUORUM = 3  # leader: step down unless a quorum was active recently
    UNREACHABLE = 4  # the transport could not reach `sender`
    SNAP_STATUS = 5  # the transport reports whether a snapshot to `sender` got through
    # Network messages.
    APP = 10
    APP_RESP = 11
    VOTE = 12
    VOTE_RESP = 13
    PRE_VOTE = 14
    PRE_VOTE_RESP = 15
    SNAP = 16
    HEARTBEAT = 17
    HEARTBEAT_RESP = 18
    TRANSFER_LEADER = 19
    TIMEOUT_NOW = 20
    READ_INDEX = 21
    READ_INDEX_RESP = 22


LOCAL_MESSAGE_TYPES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.CHECK_QUORUM,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
    }
)


class ConfState(NamedTuple):
    """The membership a log position implies: voters and learners (disjoint sets)."""

    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()

    def members(self) -> frozenset[int]:
        return self.voters | self.learners


class Snapshot(NamedTuple):
    """State machine contents up to and including `index` (whose entry had `term`)."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = ConfState()
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.index == 0


EMPTY_SNAPSHOT = Snapshot()


class HardState(NamedTuple):
    """What a member must persist before it sends the messages of the same Ready."""

    term: int = 0
    vote: int = NO_LEADER
    commit: int = 0


EMPTY_HARD_STATE = HardState()


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class SoftState(NamedTuple):
    """Volatile state worth reporting (not persisted): who leads and what this member is."""

    leader_id: int
    role: Role


class ReadState(NamedTuple):
    """A confirmed ReadIndex: once `index` is applied, a read for `request_ctx` is linearizable."""

    index: int
    request_ctx: bytes


@dataclass(slots=True)
class Message:
    """A raft message. `sender` is etcd's `From`; `index`/`log_term` name the entry preceding
    `entries` in APP, the candidate's last entry in (PRE_)VOTE, and a hint in rejections."""

    type: MessageType
    to: int = 0
    sender: int = 0
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: list[Entry] = field(default_factory=list)
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


class ConfChangeType(IntEnum):
    ADD_NODE = 0  # add a voter, or promote a learner to voter
    REMOVE_NODE = 1
    ADD_LEARNER = 2  # add a non-voting member, or demote a voter to one (one voter fewer: one change)
    UPDATE_NODE = 3  # the member's attributes (its context) change; the membership does not


class ConfChange(NamedTuple):
    """A single-server membership change, carried in a CONF_CHANGE entry's data."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def encode(self) -> bytes:
        return b"%d %d " % (self.type, self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        kind, node_id, context = data.split(b" ", 2)
        return cls(ConfChangeType(int(kind)), int(node_id), context)


@dataclass(slots=True)
class Ready:
    """Everything the core wants done, in the order it must be done.

    The contract, for each Ready returned by ``RawNode.ready()``:

    1. ``messages`` may be sent at once, in parallel with the steps below. They are a leader's
       appends, heartbeats, snapshots and TimeoutNow: none of them promises anything about this
       member's own disk (a leader counts its own entries towards commit only after ``advance()``).
       When a Ready changes the term or vote, the core puts every message in step 3 instead.
    2. Persist durably (fsync), in this order: ``snapshot`` if not None, then ``entries`` (which may
       overwrite a conflicting suffix: drop every stored entry at or after ``entries[0].index``),
       then ``hard_state`` if not None. A crash part-way may leave any prefix of this on disk (a
       write-ahead log cut short); the core copes with that, not with reordered or partial records.
    3. Only then send ``messages_after_persist`` (votes, append responses, a candidate's vote
       requests): each promises that step 2 is durable.
    4. Apply ``snapshot`` (if any) to the state machine, then ``committed_entries`` in order. A
       CONF_CHANGE entry must be handed to ``RawNode.apply_conf_change()`` when applied.
       ``read_states`` are served once their index is applied.
    5. Call ``RawNode.advance(ready)``.

    ``soft_state`` is not None when the leader or role changed; it needs no persistence.
    A Ready is never empty: ``RawNode.has_ready()`` is False rather than returning an empty one.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    read_states: list[ReadState] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    messages_after_persist: list[Message] = field(default_factory=list)
    term_or_vote_changed: bool = False

    def must_sync(self) -> bool:
        """True when step 2 must be fsynced: new entries, a snapshot, or a new term or vote (etcd's
        MustSync). A hard state that only moves the commit index may be written without waiting for
        the disk: raft never needs a durable commit index (it is re-learned after a restart)."""
        return bool(self.entries) or self.snapshot is not None or self.term_or_vote_changed

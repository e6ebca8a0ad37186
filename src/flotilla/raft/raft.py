"""The raft state machine: one member's role, term, log and (as leader) its followers' progress.

Everything enters through ``step()`` (network and local messages alike, with term handling once at
the top) and ``tick()``; a role change swaps the step and tick handlers. Effects leave as data: the
messages in ``msgs``/``msgs_after_persist`` and the state the RawNode turns into a Ready.

Membership changes are single-server (one voter or learner added or removed per change), applied when
the entry is applied, with at most one unapplied change in the log. Why not joint consensus: a small
cluster changes one member at a time anyway (etcd's member API does), one-at-a-time keeps every pair
of consecutive majorities overlapping, and the one known hazard of single-server changes (a change
committed by a leader of an older term, Ongaro's 2015 errata) is closed by making a new leader commit
an entry of its own term before it accepts a change (``pending_conf_index`` starts at its last index).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

from . import bugs
from .config import Config
from .errors import ConfChangePending, ProposalDropped, SnapshotTemporarilyUnavailable, StorageError
from .log import RaftLog
from .progress import Inflights, Progress, ProgressState
from .readonly import ReadOnly
from .storage import Storage, entries_size
from .types import (
    NO_LEADER,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Role,
    Snapshot,
    SoftState,
)

MT = MessageType

CAMPAIGN_TRANSFER = b"CampaignTransfer"
"""Context of a vote request sent because of TimeoutNow: voters grant it even inside a leader lease."""

# Messages that promise something about the sender's disk, so they wait for the Ready to be persisted.
_AFTER_PERSIST = frozenset(
    {MT.APP_RESP, MT.VOTE, MT.VOTE_RESP, MT.PRE_VOTE, MT.PRE_VOTE_RESP, MT.HEARTBEAT_RESP}
)
_ELECTION_MESSAGES = frozenset({MT.VOTE, MT.VOTE_RESP, MT.PRE_VOTE, MT.PRE_VOTE_RESP})


class _VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


class Raft:
    """One raft member. Use it through ``RawNode``; its attributes are readable for tests and status."""

    def __init__(self, config: Config, storage: Storage) -> None:
        config.validate()
        self.id = config.id
        self.config = config
        self._rng = config.rng
        self.log = RaftLog(storage, config.max_apply_bytes)
        hard_state, conf_state = storage.initial_state()
        # A member holding an entry of term T has seen term T, even if no hard state says so yet (a
        # founding member starts from the bootstrap snapshot; a crash kept entries but not the hard
        # state written after them). The persisted vote belongs to the older term: drop it. No vote
        # in the newer term was cast, since vote responses wait for the whole Ready to persist.
        self.term = hard_state.term
        self.vote = hard_state.vote
        if self.log.last_term() > self.term:
            self.term, self.vote = self.log.last_term(), NO_LEADER
        if hard_state.commit:
            self.log.commit_to(max(hard_state.commit, self.log.committed))
        if config.applied:
            self.log.applied_to(config.applied)
        self._commit_settled_conf_changes(self.log.last_index())
        self.role = Role.FOLLOWER
        self.leader_id = NO_LEADER
        self.lead_transferee = NO_LEADER
        self.pending_conf_index = 0
        self.voters: frozenset[int] = conf_state.voters
        self.learners: frozenset[int] = conf_state.learners
        self.prs: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.msgs: list[Message] = []
        self.msgs_after_persist: list[Message] = []
        self.read_states: list[ReadState] = []
        self.read_only = ReadOnly()
        self.pending_read_index_messages: list[Message] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = 0
        self._step: Callable[[Message], None] = self._step_follower
        self._tick: Callable[[], None] = self._tick_election
        self._reset_progress()
        self.become_follower(self.term, NO_LEADER)

    # --- views ----------------------------------------------------------------------------------
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def soft_state(self) -> SoftState:
        return SoftState(self.leader_id, self.role)

    def conf_state(self) -> ConfState:
        return ConfState(self.voters, self.learners)

    def promotable(self) -> bool:
        return self.id in self.voters

    def _quorum(self) -> int:
        return len(self.voters) // 2 + 1

    # --- sending --------------------------------------------------------------------------------
    def _send(self, m: Message) -> None:
        if m.sender == NO_LEADER:
            # A forwarded message keeps its sender: for TRANSFER_LEADER it names the transferee.
            m.sender = self.id
        if m.type in _ELECTION_MESSAGES:
            assert m.term, f"{m.type.name} must carry an explicit term"
        elif m.type not in (MT.PROP, MT.READ_INDEX):
            # Proposals and read requests are forwarded with term 0, as local messages.
            m.term = self.term
        if m.type in _AFTER_PERSIST:
            self.msgs_after_persist.append(m)
        else:
            self.msgs.append(m)

    def _send_append(self, to: int, send_if_empty: bool = True) -> bool:
        """Send the next APP (or a snapshot) to ``to`` unless its progress is paused."""
        pr = self.prs[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        try:
            prev_term = self.log.term(prev_index)
            entries = self.log.entries(pr.next, None, self.config.max_msg_bytes)
        except StorageError:
            return self._send_snapshot(to, pr)
        if not entries and not send_if_empty:
            return False
        self._send(
            Message(
                MT.APP,
                to=to,
                index=prev_index,
                log_term=prev_term,
                entries=entries,
                commit=self.log.committed,
            )
        )
        if entries:
            pr.sent_entries(entries[-1].index, len(entries), entries_size(entries))
        else:
            pr.sent_entries(prev_index, 0, 0)
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        # The entries it needs are compacted: InstallSnapshot (raft §7). Only to a member that
        # answered recently; an unreachable one would make us ship snapshots into the void.
        if not pr.recent_active:
            return False
        try:
            snapshot = self.log.snapshot()
        except SnapshotTemporarilyUnavailable:
            return False
        assert not snapshot.is_empty(), "entries are compacted but there is no snapshot"
        self._send(Message(MT.SNAP, to=to, snapshot=snapshot))
        pr.become_snapshot(snapshot.index)
        return True

    def _send_append_all(self, to: int) -> None:
        """Send APPs to ``to`` until its window is full or it has everything."""
        if self._send_append(to):
            while self._send_append(to, send_if_empty=False):
                pass

    def bcast_append(self) -> None:
        for member_id in self.prs:
            if member_id != self.id:
                self._send_append_all(member_id)

    def bcast_heartbeat(self, ctx: bytes = b"") -> None:
        for member_id, pr in self.prs.items():
            if member_id != self.id:
                # A follower may lack entries up to our commit; it learns it through APPs instead.
                commit = min(pr.match, self.log.committed)
                self._send(Message(MT.HEARTBEAT, to=member_id, commit=commit, context=ctx))

    def _send_timeout_now(self, to: int) -> None:
        self._send(Message(MT.TIMEOUT_NOW, to=to))

    # --- role changes ---------------------------------------------------------------------------
    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NO_LEADER
        self.leader_id = NO_LEADER
        self.transfer_campaign_term = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.config.election_timeout_ticks + self._rng.randrange(
            self.config.election_timeout_ticks
        )
        self.lead_transferee = NO_LEADER
        self.votes = {}
        self._reset_progress()
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.pending_read_index_messages = []

    def _new_progress(self, is_learner: bool) -> Progress:
        inflights = Inflights(self.config.max_inflight_msgs, self.config.max_inflight_bytes)
        return Progress(self.log.last_index() + 1, inflights, is_learner)

    def _reset_progress(self) -> None:
        self.prs = {}
        for member_id in sorted(self.voters | self.learners):
            pr = self._new_progress(member_id in self.learners)
            if member_id == self.id:
                pr.match = self.log.stable_last_index()
            self.prs[member_id] = pr

    def become_follower(self, term: int, leader_id: int) -> None:
        self._reset(term)
        self._step = self._step_follower
        self._tick = self._tick_election
        self.leader_id = leader_id
        self.role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader cannot become pre-candidate"
        # Pre-vote changes neither term nor vote: a member that cannot win disturbs nobody.
        self._step = self._step_candidate
        self._tick = self._tick_election
        self.votes = {}
        self.leader_id = NO_LEADER
        self.role = Role.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader cannot become candidate"
        self._reset(self.term + 1)
        self._step = self._step_candidate
        self._tick = self._tick_election
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        assert self.role == Role.CANDIDATE, "only a candidate can become leader"
        self._reset(self.term)
        self._step = self._step_leader
        self._tick = self._tick_heartbeat
        self.leader_id = self.id
        self.role = Role.LEADER
        own = self.prs.get(self.id)
        if own is not None:
            own.become_replicate()
            own.match = self.log.stable_last_index()
            own.recent_active = True
        # An empty entry of our term: committing it commits everything before it (raft §5.4.2, §8).
        self._append_entries([Entry(0, 0)])
        # No membership change until that entry is applied (see the module docstring).
        self.pending_conf_index = self.log.last_index()

    # --- ticks ----------------------------------------------------------------------------------
    def tick(self) -> None:
        self._tick()

    def _past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self._past_election_timeout():
            self.election_elapsed = 0
            self.step(Message(MT.HUP, sender=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.config.election_timeout_ticks:
            self.election_elapsed = 0
            if self.config.check_quorum:
                self.step(Message(MT.CHECK_QUORUM, sender=self.id))
            if self.role == Role.LEADER and self.lead_transferee != NO_LEADER:
                self.lead_transferee = NO_LEADER  # the transfer did not finish in time: abort it
                if self.id not in self.voters:
                    self._hand_over()  # we must not stay: try again
        if self.role != Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.config.heartbeat_interval_ticks:
            self.heartbeat_elapsed = 0
            self.step(Message(MT.BEAT, sender=self.id))

    # --- the one entry point --------------------------------------------------------------------
    def step(self, m: Message) -> None:
        if m.term == 0:
            pass  # a local message, or a forwarded proposal/read
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                in_lease = (
                    self.config.check_quorum
                    and self.leader_id != NO_LEADER
                    and self.election_elapsed < self.config.election_timeout_ticks
                )
                if in_lease and m.context != CAMPAIGN_TRANSFER:
                    # We heard from a leader within the minimum election timeout: do not let a
                    # member that lost touch depose it (thesis §4.2.3). Neither term nor vote moves.
                    return
            if m.type == MT.PRE_VOTE:
                pass  # never change term because of a pre-vote
            elif m.type == MT.PRE_VOTE_RESP and not m.reject:
                pass  # a granted pre-vote carries the term we will campaign for
            elif m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                self.become_follower(m.term, m.sender)
            else:
                self.become_follower(m.term, NO_LEADER)
        elif m.term < self.term:
            if m.type in (MT.HEARTBEAT, MT.APP):
                # A leader of an old term (say, just back from a partition). Tell it our term so it
                # steps down (raft §5.1). etcd stays silent unless pre-vote or check-quorum is on,
                # counting on this member to campaign; a learner never does, and the stale leader
                # would then go on leading a term nobody follows.
                self._send(Message(MT.APP_RESP, to=m.sender))
            elif m.type == MT.PRE_VOTE:
                # Answer with our term so that a pre-candidate stuck in an old term catches up.
                self._send(Message(MT.PRE_VOTE_RESP, to=m.sender, term=self.term, reject=True))
            return

        if m.type == MT.HUP:
            self._hup(transfer=False)
        elif m.type in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(m)
        else:
            self._step(m)

    def _handle_vote_request(self, m: Message) -> None:
        response = MT.VOTE_RESP if m.type == MT.VOTE else MT.PRE_VOTE_RESP
        can_vote = (
            self.vote == m.sender
            or (self.vote == NO_LEADER and self.leader_id == NO_LEADER)
            or (m.type == MT.PRE_VOTE and m.term > self.term)  # a pre-vote is for a future term
            or (bugs.ACTIVE and bugs.Bug.DOUBLE_VOTE in bugs.ACTIVE and m.type == MT.VOTE)
        )
        up_to_date = self.log.is_up_to_date(m.index, m.log_term) or (
            bugs.ACTIVE and bugs.Bug.VOTE_FOR_STALE_LOG in bugs.ACTIVE
        )
        if can_vote and up_to_date:
            # A granted pre-vote answers with the term it was asked about, so the pre-candidate
            # counts it; a real vote answers with our (equal) term.
            self._send(Message(response, to=m.sender, term=m.term))
            if m.type == MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.sender
        else:
            self._send(Message(response, to=m.sender, term=self.term, reject=True))

    def _hup(self, transfer: bool) -> None:
        if self.role == Role.LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_change():
            # Its outcome may change who votes; campaigning before applying it could split the
            # cluster into two quorums.
            return
        if self.config.pre_vote and not transfer:
            self._campaign(MT.PRE_VOTE, b"")
        else:
            self._campaign(MT.VOTE, CAMPAIGN_TRANSFER if transfer else b"")

    def _commit_settled_conf_changes(self, upto: int) -> None:
        """Mark committed every membership change before the last one in our log up to ``upto``.

        A leader proposes a change only after applying the previous one, and log matching makes our
        log up to that change the proposing leader's: so the earlier changes are committed. Knowing it
        keeps this member at most one change behind the cluster even when its persisted commit index
        lagged its log (a crash between writing entries and hard state), where it would otherwise
        vote and count votes with a membership two changes old.
        """
        log = self.log
        low = max(log.committed + 1, log.first_index())
        if upto <= low:
            return
        conf_indexes = [e.index for e in log.entries(low, upto + 1) if e.type == EntryType.CONF_CHANGE]
        if len(conf_indexes) >= 2:
            log.commit_to(conf_indexes[-2])

    def on_applied(self) -> None:
        """The application applied more entries: run a handover campaign that waited for it."""
        if self.transfer_campaign_term and self.transfer_campaign_term == self.term:
            if not self._has_unapplied_conf_change():
                self.transfer_campaign_term = 0
                self._hup(transfer=True)

    def _has_unapplied_conf_change(self) -> bool:
        log = self.log
        if log.applied >= log.committed:
            return False
        try:
            pending = log.entries(max(log.applied + 1, log.first_index()), log.committed + 1)
        except StorageError:
            return False
        return any(entry.type == EntryType.CONF_CHANGE for entry in pending)

    def _campaign(self, vote_type: MessageType, context: bytes) -> None:
        if vote_type == MT.PRE_VOTE:
            self._become_pre_candidate()
            term = self.term + 1
        else:
            self._become_candidate()
            term = self.term
        if self._poll(self.id, vote_type, granted=True) == _VoteResult.WON:
            self._won_election(vote_type)  # a cluster of one
            return
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for member_id in sorted(self.voters):
            if member_id != self.id:
                self._send(
                    Message(
                        vote_type,
                        to=member_id,
                        term=term,
                        index=last_index,
                        log_term=last_term,
                        context=context,
                    )
                )

    def _won_election(self, vote_type: MessageType) -> None:
        if vote_type == MT.PRE_VOTE:
            self._campaign(MT.VOTE, b"")
        else:
            self._become_leader()
            self.bcast_append()

    def _poll(self, member_id: int, vote_type: MessageType, granted: bool) -> _VoteResult:
        self.votes.setdefault(member_id, granted)
        yes = sum(1 for v in self.voters if self.votes.get(v) is True)
        no = sum(1 for v in self.voters if self.votes.get(v) is False)
        if yes >= self._quorum():
            return _VoteResult.WON
        if no > len(self.voters) - self._quorum():
            return _VoteResult.LOST
        return _VoteResult.PENDING

    # --- follower -------------------------------------------------------------------------------
    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MT.APP:
            self.election_elapsed = 0
            self.leader_id = m.sender
            self._handle_append(m)
        elif t == MT.HEARTBEAT:
            self.election_elapsed = 0
            self.leader_id = m.sender
            self._handle_heartbeat(m)
        elif t == MT.SNAP:
            self.election_elapsed = 0
            self.leader_id = m.sender
            self._handle_snapshot(m)
        elif t == MT.PROP:
            if self.leader_id == NO_LEADER:
                raise ProposalDropped(
                    f"member {self.id} knows no leader in term {self.term}; retry once one is elected"
                )
            if self.config.disable_proposal_forwarding:
                raise ProposalDropped(f"member {self.id} is not the leader and does not forward proposals")
            m.to = self.leader_id
            self._send(m)
        elif t == MT.TRANSFER_LEADER:
            if self.leader_id != NO_LEADER:
                m.to = self.leader_id
                self._send(m)
        elif t == MT.TIMEOUT_NOW:
            # The leader hands over: campaign at once, past any lease (thesis §3.10). A handover
            # right behind the entry that removes the old leader arrives before we applied it:
            # campaign as soon as it is applied (see on_applied).
            if self._has_unapplied_conf_change():
                self.transfer_campaign_term = self.term
            else:
                self._hup(transfer=True)
        elif t == MT.READ_INDEX:
            if self.leader_id != NO_LEADER:
                m.to = self.leader_id
                self._send(m)
        elif t == MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            self._send(Message(MT.APP_RESP, to=m.sender, index=log.committed))
            return
        if bugs.ACTIVE and bugs.Bug.KEEP_CONFLICTING_SUFFIX in bugs.ACTIVE:
            last_new = self._buggy_append_without_truncation(m)
        else:
            last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            if any(entry.type == EntryType.CONF_CHANGE for entry in m.entries):
                self._commit_settled_conf_changes(last_new)
            self._send(Message(MT.APP_RESP, to=m.sender, index=last_new))
            return
        # Reject with a hint: the last index at which our log may match the leader's, so the leader
        # can skip a whole term of conflicting entries per round trip.
        hint_index = log.find_conflict_by_term(min(m.index, log.last_index()), m.log_term)
        self._send(
            Message(
                MT.APP_RESP,
                to=m.sender,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=log.term_or_zero(hint_index),
            )
        )

    def _buggy_append_without_truncation(self, m: Message) -> int | None:
        log = self.log
        if not log.match_term(m.index, m.log_term):
            return None
        last_new = m.index + len(m.entries)
        fresh = [e for e in m.entries if e.index > log.last_index()]  # conflicts are kept: the bug
        log.append(fresh)
        log.commit_to(min(m.commit, last_new, log.last_index()))
        return last_new

    def _handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(m.commit)
        self._send(Message(MT.HEARTBEAT_RESP, to=m.sender, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        if self._restore(m.snapshot):
            self._send(Message(MT.APP_RESP, to=m.sender, index=self.log.last_index()))
        else:
            self._send(Message(MT.APP_RESP, to=m.sender, index=self.log.committed))

    def _restore(self, snapshot: Snapshot) -> bool:
        """Adopt ``snapshot`` unless our log already covers it; True if the log was replaced."""
        if snapshot.index <= self.log.committed:
            return False
        if self.id not in snapshot.conf_state.members() and self.id in self.voters | self.learners:
            # We are a member and the snapshot says otherwise: it is stale (or we were removed and
            # will learn so from the log). A member that has not yet learned of its own addition
            # takes any snapshot and learns of the addition from the entries that follow.
            return False
        if self.log.match_term(snapshot.index, snapshot.term):
            self.log.commit_to(snapshot.index)  # we have the entries: just fast-forward commit
            return False
        self.log.restore(snapshot)
        self._set_conf_state(snapshot.conf_state)
        return True

    # --- candidate ------------------------------------------------------------------------------
    def _step_candidate(self, m: Message) -> None:
        t = m.type
        own_response = MT.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else MT.VOTE_RESP
        if t == MT.PROP:
            raise ProposalDropped(f"member {self.id} is campaigning in term {self.term}; no leader yet")
        if t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
            self.become_follower(m.term, m.sender)  # a leader of our term exists
            self._step_follower(m)
        elif t == own_response:
            result = self._poll(m.sender, t, granted=not m.reject)
            if result == _VoteResult.WON:
                self._won_election(MT.PRE_VOTE if t == MT.PRE_VOTE_RESP else MT.VOTE)
            elif result == _VoteResult.LOST:
                self.become_follower(self.term, NO_LEADER)

    # --- leader ---------------------------------------------------------------------------------
    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MT.BEAT:
            self.bcast_heartbeat()
            return
        if t == MT.CHECK_QUORUM:
            if not self._quorum_active():
                self.become_follower(self.term, NO_LEADER)
            return
        if t == MT.PROP:
            self._propose(m)
            return
        if t == MT.READ_INDEX:
            self._leader_read_index(m)
            return
        pr = self.prs.get(m.sender)
        if pr is None:
            return
        if t == MT.APP_RESP:
            self._handle_append_response(m, pr)
        elif t == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state == ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first()  # let one more APP through so replication cannot stall
            if pr.match < self.log.last_index():
                self._send_append(m.sender)
            if m.context:
                self._confirm_reads(m.sender, m.context)
        elif t == MT.SNAP_STATUS:
            if pr.state == ProgressState.SNAPSHOT:
                if m.reject:
                    pr.pending_snapshot = 0
                pr.become_probe()
                pr.probe_sent = True  # wait for the next heartbeat response before probing
        elif t == MT.UNREACHABLE:
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
        elif t == MT.TRANSFER_LEADER:
            self._transfer_leader(m.sender, pr)

    def _quorum_active(self) -> bool:
        active = 0
        for member_id, pr in self.prs.items():
            if member_id == self.id:
                active += member_id in self.voters
                continue
            if pr.recent_active and member_id in self.voters:
                active += 1
            pr.recent_active = False
        return active >= self._quorum()

    def _propose(self, m: Message) -> None:
        if not m.entries:
            raise ProposalDropped("empty proposal")
        if self.id not in self.voters:
            raise ProposalDropped(
                f"member {self.id} is no longer a voter and is handing leadership over; "
                "retry at the next leader"
            )
        if self.lead_transferee != NO_LEADER:
            raise ProposalDropped(f"leadership is being transferred to member {self.lead_transferee}")
        conf_change = EntryType.CONF_CHANGE  # read once: an Enum attribute read is slow on Python 3.11
        conf_changes = [entry for entry in m.entries if entry.type == conf_change]
        for entry in conf_changes:
            if self.pending_conf_index > self.log.applied:
                raise ConfChangePending(
                    "a membership change is already in progress (or this leader has not yet applied "
                    "its predecessors' entries); retry after it is applied"
                )
            self._check_conf_change(ConfChange.decode(entry.data))
        self._append_entries(m.entries)
        if conf_changes:
            self.pending_conf_index = self.log.last_index()
        self.bcast_append()

    def _check_conf_change(self, cc: ConfChange) -> None:
        voters = set(self.voters)
        if cc.type == ConfChangeType.REMOVE_NODE or cc.type == ConfChangeType.ADD_LEARNER:
            voters.discard(cc.node_id)
        elif cc.type == ConfChangeType.ADD_NODE:
            voters.add(cc.node_id)
        if not voters:
            raise ProposalDropped(f"removing member {cc.node_id} would leave no voters")
        if cc.node_id == self.id and cc.node_id not in voters and len(self.voters) == 2:
            # The other voter learns the change committed only from us; if it does not before we
            # go, it still needs our vote under the old membership and can never get it. (etcd's
            # --strict-reconfig-check refuses such changes too.)
            raise ProposalDropped(
                f"removing or demoting the leader {self.id} of a two-voter cluster could leave the other "
                "voter unable to elect itself; transfer leadership to it first, then make this change there"
            )

    def _append_entries(self, entries: list[Entry]) -> None:
        term, first = self.term, self.log.last_index() + 1
        stamped = [Entry(term, index, e.type, e.data) for index, e in enumerate(entries, first)]
        self.log.append(stamped)
        # Our own progress moves when the entries are persisted: see on_persisted().

    def on_persisted(self, index: int, term: int) -> None:
        """The application made entries up to (index, term) durable: a leader now counts itself."""
        if self.role != Role.LEADER or not self.log.match_term(index, term):
            return
        pr = self.prs.get(self.id)
        if pr is not None and pr.maybe_update(index) and self._maybe_commit():
            self._after_commit()

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.sender)
            return
        was_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
            pr.become_replicate()
        elif pr.state == ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._after_commit()
        elif was_paused:
            self._send_append_all(m.sender)
        else:
            self._fill_window(m.sender)
        if m.sender == self.lead_transferee and pr.match == self.log.last_index():
            self._send_timeout_now(m.sender)

    def _fill_window(self, to: int) -> None:
        while self._send_append(to, send_if_empty=False):
            pass

    def _maybe_commit(self) -> bool:
        """Commit the highest index a quorum of voters has; only an entry of the current term
        is committed by counting replicas (raft §5.4.2), the ones before it follow."""
        matches = sorted((self.prs[v].match for v in self.voters if v in self.prs), reverse=True)
        if len(matches) < self._quorum():
            return False
        index = matches[self._quorum() - 1]
        if bugs.ACTIVE and bugs.Bug.COMMIT_PREVIOUS_TERM in bugs.ACTIVE and index > self.log.committed:
            self.log.commit_to(index)
            return True
        return self.log.maybe_commit(index, self.term)

    def _after_commit(self) -> None:
        if self.pending_read_index_messages and self._committed_in_current_term():
            pending, self.pending_read_index_messages = self.pending_read_index_messages, []
            for m in pending:
                self._leader_read_index(m)
        self.bcast_append()

    def _committed_in_current_term(self) -> bool:
        return self.log.term_or_zero(self.log.committed) == self.term

    def _leader_read_index(self, m: Message) -> None:
        if not self._committed_in_current_term():
            # Our commit index may lag the true one until our own term's entry commits (thesis §6.4),
            # even as the only voter: a predecessor may have committed entries we have not applied.
            self.pending_read_index_messages.append(m)
            return
        if len(self.voters) == 1 and self.id in self.voters:
            self._answer_read(m, self.log.committed)
            return
        if bugs.ACTIVE and bugs.Bug.READ_WITHOUT_QUORUM in bugs.ACTIVE:
            self._answer_read(m, self.log.committed)
            return
        self.read_only.add_request(self.log.committed, m, self.id)
        self.bcast_heartbeat(m.context)

    def _confirm_reads(self, member_id: int, ctx: bytes) -> None:
        acks = self.read_only.recv_ack(member_id, ctx)
        if acks is None or sum(1 for v in acks if v in self.voters) < self._quorum():
            return
        for status in self.read_only.advance(ctx):
            self._answer_read(status.request, status.index)

    def _answer_read(self, request: Message, index: int) -> None:
        if request.sender in (NO_LEADER, self.id):
            self.read_states.append(ReadState(index, request.context))
        else:
            self._send(Message(MT.READ_INDEX_RESP, to=request.sender, index=index, context=request.context))

    def _transfer_leader(self, transferee: int, pr: Progress) -> None:
        if pr.is_learner or transferee == self.id:
            return
        if self.lead_transferee == transferee:
            return  # already under way
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        self.lead_transferee = transferee
        if pr.match == self.log.last_index():
            self._send_timeout_now(transferee)
        else:
            self._send_append(transferee)

    # --- membership -----------------------------------------------------------------------------
    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed single-server change; returns the new membership."""
        voters, learners = set(self.voters), set(self.learners)
        if cc.type == ConfChangeType.ADD_NODE:
            learners.discard(cc.node_id)
            voters.add(cc.node_id)
        elif cc.type == ConfChangeType.ADD_LEARNER:
            voters.discard(cc.node_id)
            learners.add(cc.node_id)
        elif cc.type == ConfChangeType.REMOVE_NODE:
            voters.discard(cc.node_id)
            learners.discard(cc.node_id)
        if voters:  # a change that would leave no voters was refused at proposal; never apply it
            self._set_conf_state(ConfState(frozenset(voters), frozenset(learners)))
        return self.conf_state()

    def _set_conf_state(self, conf_state: ConfState) -> None:
        self.voters, self.learners = conf_state.voters, conf_state.learners
        members = conf_state.members()
        for member_id in list(self.prs):
            if member_id not in members:
                del self.prs[member_id]
        added = set()
        for member_id in sorted(members):
            pr = self.prs.get(member_id)
            if pr is None:
                added.add(member_id)
                pr = self._new_progress(member_id in self.learners)
                pr.recent_active = True  # a new member gets a chance before check-quorum counts it
                if member_id == self.id:
                    pr.match = self.log.stable_last_index()
                self.prs[member_id] = pr
            pr.is_learner = member_id in self.learners
        if self.role != Role.LEADER:
            return
        if self.lead_transferee not in self.voters:
            self.lead_transferee = NO_LEADER
        if self._maybe_commit():
            self._after_commit()
        else:
            # Probe new members at once; the others only need what is new to them, if anything.
            for member_id in self.prs:
                if member_id != self.id:
                    self._send_append(member_id, send_if_empty=member_id in added)
        if self.id not in self.voters:
            self._hand_over()

    def _hand_over(self) -> None:
        """A leader removed or demoted by a change it applied keeps leading for now (thesis §4.2.2):
        it goes on replicating and telling the others the commit index, so that they apply the change
        and stop counting on its vote, while it hands over to its most up-to-date voter. It accepts no
        proposals meanwhile. Stepping down at once could leave voters that never learn the change
        committed waiting forever for the vote of a member that no longer gives one."""
        if self.lead_transferee != NO_LEADER:
            return
        candidates = [(pr.match, v) for v, pr in self.prs.items() if v in self.voters]
        if candidates:
            _, best = max(candidates)
            self._transfer_leader(best, self.prs[best])

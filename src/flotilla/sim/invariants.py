"""Safety properties checked after every simulated event. A breach raises Violation at once."""

from __future__ import annotations

import zlib

from flotilla.raft import Entry, HardState, Role, StorageError


class Violation(Exception):
    """A safety or liveness property does not hold; the message says which, where and when."""


def chain_digest(previous: int, entry: Entry) -> int:
    """The state machine's running digest: a CRC over every applied entry's data, in order."""
    return zlib.crc32(entry.data, previous ^ entry.index)


class Checker:
    """Watches every member and remembers what must stay true.

    - election safety: at most one leader per term;
    - log matching: entries with the same index and term carry the same data and follow the same term;
    - leader completeness: a new leader holds every committed entry;
    - state machine safety: every member applies the same entry at each index, in order, with no gaps
      (a snapshot restores exactly the state at its index);
    - monotonicity: a member's term and commit never go back (in memory, and on disk across restarts);
    - linearizable reads: a ReadIndex read sees every write acknowledged before it started.
    """

    def __init__(self) -> None:
        self.leaders: dict[int, tuple[int, int]] = {}  # term -> (leader id, its incarnation)
        self.committed: dict[int, Entry] = {}  # index -> the entry committed there
        # index -> an upper bound on the term in which it was committed: the lowest term of a member
        # seen knowing it committed (the committing leader itself, usually, which is exact).
        self.commit_term: dict[int, int] = {}
        self.max_committed = 0
        self.digest_at: dict[int, int] = {0: 0}
        self.entry_ids: dict[tuple[int, int], tuple[bytes, int]] = {}  # (index, term) -> (data, prev term)
        self.durable: dict[int, HardState] = {}  # member id -> last persisted hard state
        self.acked_index: dict[bytes, int] = {}  # key -> highest index of an acknowledged write to it
        self.reads_checked = 0
        self.now_us = 0

    def _fail(self, what: str) -> None:
        raise Violation(f"at t={self.now_us / 1e6:.6f}s: {what}")

    # --- after every step and tick ----------------------------------------------------------------
    def observe(self, member_id: int, incarnation: int, raft, seen: list[int]) -> None:
        """``seen`` is the member's [term, commit, recorded commit, last term checked as leader]
        for this incarnation."""
        term = raft.term
        if term < seen[0]:
            self._fail(f"member {member_id} term went back from {seen[0]} to {term}")
        seen[0] = term
        if raft.role == Role.LEADER:
            # One leader per term, and one incarnation of it: a member that restarts and leads the
            # same term again has lost the vote it persisted (or never persisted it).
            other = self.leaders.setdefault(term, (member_id, incarnation))
            if other != (member_id, incarnation):
                self._fail(
                    f"two leaders in term {term}: member {other[0]} (incarnation {other[1]}) "
                    f"and member {member_id} (incarnation {incarnation})"
                )
            if seen[3] != term:
                seen[3] = term
                self._check_leader_completeness(member_id, raft)
        commit = raft.log.committed
        if commit < seen[1]:
            self._fail(f"member {member_id} commit went back from {seen[1]} to {commit}")
        seen[1] = commit
        if commit > seen[2]:
            self._record_commits(member_id, raft, seen[2], commit)
            seen[2] = commit

    def on_crash(self, member_id: int, incarnation: int, durable_term: int) -> None:
        """Forget leaderships of the crashed incarnation in terms it never made durable: it sent
        nothing in them (messages wait for the term to persist), so they never existed for anyone."""
        for term, leader in list(self.leaders.items()):
            if leader == (member_id, incarnation) and term > durable_term:
                del self.leaders[term]

    def _record_commits(self, member_id: int, raft, low: int, high: int) -> None:
        log = raft.log
        start = max(low + 1, log.first_index())
        if start > high:
            return
        commit_term = self.commit_term
        for entry in log.entries(start, high + 1):
            known = self.committed.get(entry.index)
            if known is None:
                self.committed[entry.index] = entry
                commit_term[entry.index] = raft.term
            elif raft.term < commit_term[entry.index]:
                commit_term[entry.index] = raft.term
            if known is not None and known != entry:
                self._fail(
                    f"member {member_id} committed {_show(entry)} at index {entry.index}, "
                    f"but {_show(known)} was committed there before"
                )
        if high > self.max_committed:
            self.max_committed = high

    def _check_leader_completeness(self, member_id: int, raft) -> None:
        log = raft.log
        for index in range(max(log.first_index(), 1), self.max_committed + 1):
            known = self.committed.get(index)
            if known is None or self.commit_term[index] >= raft.term:
                # Leader completeness speaks of entries committed in earlier terms. An entry that a
                # later term's leader committed (a leader of term 4 can exist before one of term 3
                # wins its election) need not be in this log.
                continue
            try:
                term = log.term(index)
            except StorageError:
                term = None
            if term != known.term:
                self._fail(
                    f"leader completeness: member {member_id} became leader of term {raft.term} "
                    f"without committed entry {index} (term {known.term}); it has term {term}"
                )

    # --- disk -------------------------------------------------------------------------------------
    def on_persisted(
        self, member_id: int, entries: list[Entry], prev_term: int, hard: HardState | None
    ) -> None:
        """``prev_term`` is the term of the entry stored just before ``entries[0]``."""
        ids = self.entry_ids
        for entry in entries:
            key = (entry.index, entry.term)
            known = ids.get(key)
            if known is None:
                ids[key] = (entry.data, prev_term)
            elif known != (entry.data, prev_term):
                self._fail(
                    f"log matching: member {member_id} stored entry {entry.index}/{entry.term} "
                    f"with data {entry.data[:20]!r} after term {prev_term}; another log has "
                    f"{known[0][:20]!r} after term {known[1]}"
                )
            prev_term = entry.term
        if hard is not None:
            before = self.durable.get(member_id)
            if before is not None and (hard.term < before.term or hard.commit < before.commit):
                self._fail(f"member {member_id} persisted {hard} after {before}: term or commit went back")
            self.durable[member_id] = hard

    # --- the state machine ------------------------------------------------------------------------
    def on_apply(self, member_id: int, applied: int, digest: int, entry: Entry) -> int:
        """Check the member applies ``entry`` right after ``applied``; return its new digest."""
        if entry.index != applied + 1:
            self._fail(f"member {member_id} applied entry {entry.index} right after {applied}")
        known = self.committed.get(entry.index)
        if known != entry:
            self._fail(
                f"member {member_id} applied {_show(entry)} at {entry.index}; committed there: {known}"
            )
        digest = chain_digest(digest, entry)
        expected = self.digest_at.setdefault(entry.index, digest)
        if expected != digest:
            self._fail(f"member {member_id}'s state after applying {entry.index} differs from another's")
        return digest

    def on_restore(self, member_id: int, index: int, digest: int) -> None:
        expected = self.digest_at.get(index)
        if expected is not None and expected != digest:
            self._fail(f"member {member_id} restored a snapshot at {index} whose state differs")

    # --- clients ----------------------------------------------------------------------------------
    def write_acked(self, key: bytes, index: int) -> None:
        if index > self.acked_index.get(key, 0):
            self.acked_index[key] = index

    def read_started(self, key: bytes) -> int:
        return self.acked_index.get(key, 0)

    def read_served(
        self, member_id: int, key: bytes, written_at: int, required: int, read_index: int
    ) -> None:
        """``written_at``: the index of the write whose value the read returned (0: none)."""
        self.reads_checked += 1
        if written_at < required:
            self._fail(
                f"stale read at member {member_id}: key {key!r} returned the write committed at {written_at} "
                f"(read index {read_index}), but a write committed at {required} was acknowledged "
                "before the read began"
            )


def _show(entry: Entry) -> str:
    return f"{entry.index}/{entry.term} {entry.data[:24]!r}"

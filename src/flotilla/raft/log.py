"""The raft log as one member sees it: what storage holds, plus the unstable tail not yet persisted."""

from __future__ import annotations

from .errors import CompactedError, StorageError, UnavailableError
from .storage import Storage, limit_size
from .types import Entry, Snapshot


class RaftLog:
    """Storage (persisted) + unstable (appended since the last Ready) + commit and apply cursors.

    Invariant: applied <= committed <= last_index(). The unstable part starts at ``_offset``; an
    unstable snapshot, when present, replaces everything before ``_offset``.
    """

    def __init__(self, storage: Storage, max_apply_bytes: int | None = None) -> None:
        self.storage = storage
        self.max_apply_bytes = max_apply_bytes
        first, last = storage.first_index(), storage.last_index()
        self._offset = last + 1
        self._unstable: list[Entry] = []
        self.unstable_snapshot: Snapshot | None = None
        # The snapshot's index is both committed and applied by definition.
        self.committed = first - 1
        self.applied = first - 1

    # --- bounds and terms --------------------------------------------------------------------------
    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self._unstable:
            return self._offset + len(self._unstable) - 1
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.index
        return self.storage.last_index()

    def term(self, index: int) -> int:
        """The term of entry ``index``; raises CompactedError/UnavailableError outside the log."""
        if index >= self._offset:
            position = index - self._offset
            if position < len(self._unstable):
                return self._unstable[position].term
            raise UnavailableError(f"entry {index} is beyond the last ({self.last_index()})")
        snap = self.unstable_snapshot
        if snap is not None:
            if index == snap.index:
                return snap.term
            raise CompactedError(f"entry {index} precedes the pending snapshot at {snap.index}")
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except StorageError:
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except StorageError:
            return False

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: is a log ending at (last_index, last_term) at least as up-to-date as ours?"""
        our_term = self.last_term()
        return last_term > our_term or (last_term == our_term and last_index >= self.last_index())

    # --- reading entries ---------------------------------------------------------------------------
    def entries(self, lo: int, hi: int | None = None, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi) (hi defaults to the end), limited to ``max_bytes`` (at least one)."""
        last = self.last_index()
        if hi is None:
            hi = last + 1
        if lo > last:
            return []
        if lo < self.first_index():
            raise CompactedError(f"entry {lo} is compacted (first is {self.first_index()})")
        assert hi <= last + 1, f"entries up to {hi - 1} requested beyond last {last}"
        if hi <= self._offset:
            return self.storage.entries(lo, hi, max_bytes)
        if lo >= self._offset:
            return limit_size(self._unstable[lo - self._offset : hi - self._offset], max_bytes)
        stored = self.storage.entries(lo, self._offset, max_bytes)
        if len(stored) < self._offset - lo:  # the size limit cut the stored part short
            return stored
        return limit_size(stored + self._unstable[: hi - self._offset], max_bytes)

    def stable_last_index(self) -> int:
        """The last index whose entry (as the log has it now) is persisted."""
        if self.unstable_snapshot is not None:
            return 0
        return self._offset - 1

    def unstable_entries(self) -> list[Entry]:
        return list(self._unstable)

    def has_next_committed_entries(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed_entries(self) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed < lo:
            return []
        return self.entries(lo, self.committed + 1, self.max_apply_bytes)

    def snapshot(self) -> Snapshot:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot
        return self.storage.snapshot()

    # --- changing the log --------------------------------------------------------------------------
    def append(self, entries: list[Entry]) -> int:
        """Append, overwriting any conflicting suffix of the unstable part; returns the last index."""
        if not entries:
            return self.last_index()
        after = entries[0].index
        assert after > self.committed, f"overwriting committed entry {after} (committed {self.committed})"
        assert after <= self.last_index() + 1, f"gap: appending {after} after {self.last_index()}"
        if after == self._offset + len(self._unstable):
            self._unstable.extend(entries)
        elif after <= self._offset:
            # Replaces everything unstable and a suffix of what storage holds; the application
            # drops that stored suffix when it persists these entries (see Ready).
            self._offset = after
            self._unstable = list(entries)
        else:
            del self._unstable[after - self._offset :]
            self._unstable.extend(entries)
        return self.last_index()

    def find_conflict(self, entries: list[Entry]) -> int:
        """The index of the first entry that is new or conflicts with ours; 0 if all match."""
        last = self.last_index()
        for entry in entries:
            # A new entry is found without match_term(), which would raise and catch UnavailableError.
            if entry.index > last or not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest i <= index whose term is <= term (fast backtracking: every entry after it
        has a larger term than the other log's entry at ``index``, so none of them can match)."""
        while index > 0:
            try:
                if self.term(index) <= term:
                    return index
            except StorageError:
                return index  # compacted: the snapshot point matches by definition
            index -= 1
        return 0

    def maybe_append(self, index: int, log_term: int, commit: int, entries: list[Entry]) -> int | None:
        """Handle an APP: if our entry at ``index`` has ``log_term``, adopt ``entries`` (dropping a
        conflicting suffix, raft §5.3) and return the index of the last new entry; else None."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            assert conflict > self.committed, f"entry {conflict} conflicts with committed {self.committed}"
            self.append(entries[conflict - index - 1 :])
        self.commit_to(min(commit, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            assert index <= self.last_index(), f"commit {index} beyond last {self.last_index()}"
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Advance commit to ``index`` only if that entry is from ``term`` (raft §5.4.2)."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index:
            assert self.applied <= index <= self.committed, f"applied {index} out of range"
            self.applied = index

    def restore(self, snapshot: Snapshot) -> None:
        """Adopt a snapshot: it replaces the whole log until persisted (stable_snapshot_to)."""
        self.committed = snapshot.index
        self.unstable_snapshot = snapshot
        self._offset = snapshot.index + 1
        self._unstable = []

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to (index, term) are persisted; drop them from the unstable part."""
        if index < self._offset or index >= self._offset + len(self._unstable):
            return
        if self._unstable[index - self._offset].term != term:
            return  # overwritten since that Ready; the newer entries are still unstable
        del self._unstable[: index + 1 - self._offset]
        self._offset = index + 1

    def stable_snapshot_to(self, index: int) -> None:
        if self.unstable_snapshot is not None and self.unstable_snapshot.index == index:
            self.unstable_snapshot = None

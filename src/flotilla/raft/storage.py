"""The durable-log boundary: the ``Storage`` protocol raft reads from, and ``MemoryStorage``, its twin.

Raft only reads storage; the application writes it while handling a Ready (append entries, set hard
state, apply or create snapshots, compact).
"""

from __future__ import annotations

from typing import Protocol

from .errors import CompactedError, SnapshotOutOfDateError, UnavailableError
from .types import EMPTY_HARD_STATE, EMPTY_SNAPSHOT, ConfState, Entry, HardState, Snapshot


class Storage(Protocol):
    """Read access to the persisted log. Indexes are raft log indexes (the first entry is 1)."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state, and the membership of the latest snapshot."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi); at least one entry if any, then as many as fit in ``max_bytes``.
        Raises CompactedError if lo <= the compaction point, UnavailableError if hi > last+1."""
        ...

    def term(self, index: int) -> int:
        """The term of entry ``index``; the snapshot's term at the compaction point.
        Raises CompactedError or UnavailableError outside that range."""
        ...

    def first_index(self) -> int:
        """The index of the first entry still available (compaction point + 1)."""
        ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot (for sending to a lagging follower)."""
        ...


def entry_size(entry: Entry) -> int:
    """The size raft budgets for an entry in a message; data dominates, 16 covers the header."""
    return len(entry.data) + 16


def entries_size(entries: list[Entry]) -> int:
    """``entry_size`` summed over ``entries``."""
    return sum([len(entry.data) for entry in entries]) + 16 * len(entries)


def limit_size(entries: list[Entry], max_bytes: int | None) -> list[Entry]:
    """The longest prefix within ``max_bytes`` (at least one entry)."""
    if max_bytes is None or not entries or entries_size(entries) <= max_bytes:
        return entries  # the common case: everything fits, found without a Python-level loop
    total = 0
    for count, entry in enumerate(entries):
        total += len(entry.data) + 16
        if total > max_bytes and count > 0:
            return entries[:count]
    return entries


def bootstrap_snapshot(
    voters: frozenset[int] | set[int], learners: frozenset[int] | set[int] = frozenset()
) -> Snapshot:
    """The snapshot every founding member of a new cluster starts from: index 1, term 1, the initial
    membership. Apply it to each founding member's empty storage; members added later start empty and
    receive a snapshot from the leader."""
    return Snapshot(1, 1, ConfState(frozenset(voters), frozenset(learners)), b"")


class MemoryStorage:
    """An in-memory ``Storage`` twin. ``_entries[0]`` is a dummy holding the snapshot's index and term,
    so ``_entries[i - offset]`` is entry i, where offset is the dummy's index."""

    def __init__(self) -> None:
        self.hard_state: HardState = EMPTY_HARD_STATE
        self._snapshot: Snapshot = EMPTY_SNAPSHOT
        self._entries: list[Entry] = [Entry(0, 0)]

    # --- Storage protocol -------------------------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self._snapshot.conf_state

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        offset = self._entries[0].index
        if lo <= offset:
            raise CompactedError(f"entry {lo} is compacted (first available is {offset + 1})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries up to {hi - 1} requested, last is {self.last_index()}")
        return limit_size(self._entries[lo - offset : hi - offset], max_bytes)

    def term(self, index: int) -> int:
        offset = self._entries[0].index
        if index < offset:
            raise CompactedError(f"entry {index} is compacted (snapshot at {offset})")
        if index - offset >= len(self._entries):
            raise UnavailableError(f"entry {index} is beyond the last ({self.last_index()})")
        return self._entries[index - offset].term

    def first_index(self) -> int:
        return self._entries[0].index + 1

    def last_index(self) -> int:
        return self._entries[0].index + len(self._entries) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # --- writes, done by the application while handling a Ready -----------------------------------
    def set_hard_state(self, hard_state: HardState) -> None:
        self.hard_state = hard_state

    def append(self, entries: list[Entry]) -> None:
        """Append entries, first dropping any stored suffix they overwrite."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return  # all of it is already in the snapshot
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._entries[0].index
        assert offset <= len(self._entries), f"gap: appending {entries[0].index} after {self.last_index()}"
        del self._entries[offset:]
        self._entries.extend(entries)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log with ``snapshot`` (a follower installing InstallSnapshot)."""
        if snapshot.index <= self._snapshot.index:
            raise SnapshotOutOfDateError(
                f"snapshot {snapshot.index} is not newer than {self._snapshot.index}"
            )
        self._snapshot = snapshot
        self._entries = [Entry(snapshot.term, snapshot.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record the application's snapshot of its state at applied ``index``."""
        if index <= self._snapshot.index:
            raise SnapshotOutOfDateError(f"snapshot {index} is not newer than {self._snapshot.index}")
        if index > self.last_index():
            raise UnavailableError(f"snapshot index {index} is beyond the last entry {self.last_index()}")
        self._snapshot = Snapshot(index, self.term(index), conf_state, data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Discard entries up to and including ``index`` (which a snapshot must cover)."""
        offset = self._entries[0].index
        if index <= offset:
            raise CompactedError(f"already compacted to {offset}")
        if index > self.last_index():
            raise UnavailableError(f"compact {index} is beyond the last entry {self.last_index()}")
        dummy = Entry(self._entries[index - offset].term, index)
        self._entries = [dummy, *self._entries[index - offset + 1 :]]

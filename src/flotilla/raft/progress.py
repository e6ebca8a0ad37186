"""What a leader knows about each member's log, and how it paces replication to it."""

from __future__ import annotations

from collections import deque
from enum import IntEnum


class ProgressState(IntEnum):
    PROBE = 0  # one APP per heartbeat interval until the follower's match is found
    REPLICATE = 1  # pipelined APPs, bounded by the inflight window
    SNAPSHOT = 2  # waiting for an InstallSnapshot to land; no APPs


class Inflights:
    """The APPs sent but not yet acknowledged: a window bounded in count and bytes."""

    __slots__ = ("max_count", "max_bytes", "_sent", "bytes")

    def __init__(self, max_count: int, max_bytes: int | None) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._sent: deque[tuple[int, int]] = deque()  # (last index of the APP, its payload bytes)
        self.bytes = 0

    def add(self, last_index: int, size: int) -> None:
        self._sent.append((last_index, size))
        self.bytes += size

    def free_le(self, index: int) -> None:
        """Forget every APP whose last index is <= ``index`` (acknowledged)."""
        sent = self._sent
        while sent and sent[0][0] <= index:
            self.bytes -= sent.popleft()[1]

    def free_first(self) -> None:
        if self._sent:
            self.bytes -= self._sent.popleft()[1]

    def full(self) -> bool:
        return len(self._sent) >= self.max_count or (
            self.max_bytes is not None and self.bytes >= self.max_bytes
        )

    def count(self) -> int:
        return len(self._sent)

    def reset(self) -> None:
        self._sent.clear()
        self.bytes = 0


class Progress:
    """A leader's view of one member: ``match`` (highest index known replicated) and ``next`` (the
    next index to send). etcd's tracker.Progress, without joint configurations."""

    __slots__ = (
        "match",
        "next",
        "state",
        "probe_sent",
        "pending_snapshot",
        "recent_active",
        "is_learner",
        "inflights",
    )

    def __init__(self, next_index: int, inflights: Inflights, is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.recent_active = False
        self.is_learner = is_learner
        self.inflights = inflights

    def __repr__(self) -> str:
        return (
            f"Progress({self.state.name} match={self.match} next={self.next}"
            f"{' learner' if self.is_learner else ''}{' paused' if self.is_paused() else ''}"
            f"{f' snap={self.pending_snapshot}' if self.state == ProgressState.SNAPSHOT else ''}"
            f" inflight={self.inflights.count()})"
        )

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            # The snapshot may have landed: resume after it, or after match if that is further.
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """An acknowledgement up to ``index``; True if it moved ``match``."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def sent_entries(self, last_index: int, count: int, size: int) -> None:
        """Record an APP carrying ``count`` entries ending at ``last_index``."""
        if self.state == ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflights.add(last_index, size)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A rejection of the APP whose previous index was ``rejected``; False if it is stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1  # the window was optimistic; probe from the known match
            return True
        if self.next - 1 != rejected:
            return False  # a rejection of an older probe
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True

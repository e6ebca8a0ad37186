"""A member's raft log on disk: the WAL and snapshot files behind raft's in-memory ``MemoryStorage``.

Layout under the data directory, as etcd lays it out::

    member/wal/    segmented write-ahead log (flotilla.wal)
    member/snap/   raft snapshot files (flotilla.snap) and ``db``, the MVCC backend

Raft reads the log from ``MemoryStorage``; this class keeps the disk in step with it. The split of each
Ready's persistence: ``write_ahead`` does the slow, durable part (one WAL write and one fsync, run in a
worker thread), ``mirror`` then updates the in-memory log on the event loop.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from flotilla.raft import ConfState, HardState, MemoryStorage, Ready, Snapshot, bootstrap_snapshot
from flotilla.snap import Snapshotter
from flotilla.wal import WAL, WalSnapshotMark

__all__ = ["MemberStorage", "RecoveredLog", "member_paths"]


@dataclass(frozen=True)
class MemberPaths:
    member: Path
    wal: Path
    snap: Path
    backend: Path


def member_paths(data_dir: Path | str, wal_dir: Path | str | None = None) -> MemberPaths:
    member = Path(data_dir) / "member"
    snap = member / "snap"
    return MemberPaths(member, Path(wal_dir) if wal_dir else member / "wal", snap, snap / "db")


@dataclass
class RecoveredLog:
    """What a restart found: the WAL metadata (member and cluster IDs), the newest snapshot and the log."""

    metadata: bytes
    snapshot: Snapshot
    hard_state: HardState
    last_index: int


class MemberStorage:
    """The durable raft log of one member. ``memory`` is what raft reads."""

    def __init__(self, paths: MemberPaths, wal: WAL, snapshotter: Snapshotter, memory: MemoryStorage) -> None:
        self.paths = paths
        self.memory = memory
        self._wal = wal
        self._snapshotter = snapshotter
        self._wal_lock = threading.Lock()  # write_ahead runs in a worker thread; snapshots on the loop

    @staticmethod
    def exists(paths: MemberPaths) -> bool:
        return WAL.exists(paths.wal)

    @classmethod
    def create(cls, paths: MemberPaths, metadata: bytes, voters: set[int]) -> MemberStorage:
        """A new member. Of a new cluster (``voters`` given): a WAL that starts at the bootstrap snapshot
        (index 1, term 1) recording the founding membership, which every founding member shares. Joining
        an existing cluster (no voters): an empty log, so the leader's first append finds nothing to build
        on and sends its snapshot (the whole state, the v2 tree included) before any entry."""
        paths.snap.mkdir(parents=True, exist_ok=True)
        snapshotter = Snapshotter(paths.snap)
        wal = WAL.create(paths.wal, metadata)
        memory = MemoryStorage()
        if voters:
            snapshot = bootstrap_snapshot(voters)
            snapshotter.save(snapshot)
            wal.save_snapshot(WalSnapshotMark(snapshot.index, snapshot.term))
            memory.apply_snapshot(snapshot)
        return cls(paths, wal, snapshotter, memory)

    @classmethod
    def open(cls, paths: MemberPaths) -> tuple[MemberStorage, RecoveredLog] | None:
        """Reopen after a restart: newest snapshot the WAL recorded, then every WAL record after it.
        None when the WAL holds nothing at all (a crash during ``create``): the member starts anew."""
        snapshotter = Snapshotter(paths.snap)
        # A crash between writing a snapshot file and its WAL mark leaves a file the log never recorded.
        snapshot = snapshotter.load_newest(available=WAL.snapshot_marks(paths.wal))
        mark = WalSnapshotMark(snapshot.index, snapshot.term) if snapshot else WalSnapshotMark(0, 0)
        wal, contents = WAL.open(paths.wal, mark)
        if snapshot is None and not contents.entries and contents.hard_state is None:
            wal.close()
            shutil.rmtree(paths.wal)
            return None
        memory = MemoryStorage()
        if snapshot is not None:
            memory.apply_snapshot(snapshot)
        if contents.hard_state is not None:
            memory.set_hard_state(contents.hard_state)
        memory.append(contents.entries)
        recovered = RecoveredLog(
            contents.metadata,
            snapshot or Snapshot(0, 0, ConfState(frozenset(), frozenset()), b""),
            memory.hard_state,
            memory.last_index(),
        )
        return cls(paths, wal, snapshotter, memory), recovered

    # --- each Ready -------------------------------------------------------------------------------
    def write_ahead(self, rd: Ready) -> None:
        """Make the Ready's snapshot, entries and hard state durable (blocking: run it in a thread).
        All of them go into one WAL write and one fsync: this is the group commit."""
        hard_state = rd.hard_state or self._unsaved_commit
        self._unsaved_commit = None
        with self._wal_lock:
            if rd.snapshot is not None:
                self._snapshotter.save(rd.snapshot)
                self._wal.save_snapshot(WalSnapshotMark(rd.snapshot.index, rd.snapshot.term))
            if rd.entries or hard_state is not None:
                self._wal.save(hard_state, rd.entries)

    _unsaved_commit: HardState | None = None

    def note_commit(self, hard_state: HardState) -> None:
        """A hard state that only moves the commit index (no fsync needed, etcd's MustSync): raft's
        memory takes it now, the WAL with the next write. A crash before then only makes a restart
        re-learn the commit index."""
        self.memory.set_hard_state(hard_state)
        self._unsaved_commit = hard_state

    def mirror(self, rd: Ready) -> None:
        """Bring raft's in-memory log up to what ``write_ahead`` made durable (on the event loop)."""
        if rd.snapshot is not None:
            self.memory.apply_snapshot(rd.snapshot)
        if rd.entries:
            self.memory.append(rd.entries)
        if rd.hard_state is not None:
            self.memory.set_hard_state(rd.hard_state)

    # --- snapshots and compaction -----------------------------------------------------------------
    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record in memory a snapshot of the applied state at ``index`` (on the event loop); then call
        ``persist_snapshot`` in a thread, then ``compact``."""
        return self.memory.create_snapshot(index, conf_state, data)

    def persist_snapshot(self, snapshot: Snapshot) -> None:
        """Write the snapshot file and its WAL mark, then release WAL segments wholly before it. The
        backend must already hold the state at ``snapshot.index`` durably. Blocking: run it in a thread."""
        with self._wal_lock:
            self._snapshotter.save(snapshot)
            # A commit-only hard state may not have reached the WAL yet, and a restart trusts only the
            # marks at or below the WAL's commit: record that the snapshot's index is committed (it is:
            # it was applied) before the mark, keeping the WAL's newest term and vote.
            saved = self._wal.hard_state
            if saved is not None and saved.commit < snapshot.index:
                self._wal.save(HardState(saved.term, saved.vote, snapshot.index), [], sync=False)
            self._wal.save_snapshot(WalSnapshotMark(snapshot.index, snapshot.term))
            self._wal.release_before(snapshot.index)

    def compact(self, index: int, catch_up_entries: int) -> None:
        """Drop in-memory entries older than ``catch_up_entries`` before ``index`` (the rest stay so a
        slow follower can catch up without a snapshot). On the event loop."""
        compact_to = index - catch_up_entries
        if compact_to > self.memory.first_index():
            self.memory.compact(compact_to)

    def purge_snapshots(self, keep: int) -> None:
        self._snapshotter.purge(keep)

    def close(self) -> None:
        with self._wal_lock:
            self._wal.close()

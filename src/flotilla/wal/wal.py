"""The write-ahead log: an append-only, segmented, checksummed file of raft entries and hard states.

Not thread-safe: one caller (the member's raft driver, perhaps from a worker thread) at a time.
"""

from __future__ import annotations

import fcntl
import gc
import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from flotilla.raft.types import Entry, HardState

from .errors import WalCorruptError, WalError
from .records import (
    RecordType,
    WalSnapshotMark,
    decode_segment,
    encode_entries,
    encode_hard_state,
    encode_record,
    encode_snapshot,
    entry_offset,
    scan_marks,
)
from .segments import Segment, fsync_dir, list_segments, search_segment, segment_name, write_all

DEFAULT_SEGMENT_BYTES = 64 * 2**20  # etcd's SegmentSizeBytes
_NO_MARK = WalSnapshotMark(0, 0)


class WalContents(NamedTuple):
    """What ``WAL.open`` read.

    ``entries`` are every entry after ``snapshot.index`` in index order, overwrites resolved (a later
    save whose first entry has index i replaced the entries >= i).
    """

    metadata: bytes
    hard_state: HardState | None
    snapshot: WalSnapshotMark
    entries: list[Entry]


class WAL:
    """An open log, ready to append. Build it with ``create`` or ``open``, never directly.

    Durability contract: when ``save(..., sync=True)`` or ``save_snapshot`` returns, everything written
    so far is on stable storage. After any OSError from a write or fsync the WAL refuses further writes
    (the page cache may have dropped the data: only a restart, which re-reads the disk, is safe).
    """

    def __init__(
        self,
        directory: Path,
        segments: list[Segment],
        *,
        metadata: bytes,
        hard_state: HardState | None,
        last_index: int,
        segment_bytes: int,
        lock_fd: int,
    ) -> None:
        self._directory = directory
        self._segments = segments
        self._metadata = metadata
        self._hard_state = hard_state
        self._last_index = last_index
        self._segment_bytes = segment_bytes
        self._lock_fd: int | None = lock_fd
        self._fd: int | None = os.open(segments[-1].path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        self._failed: BaseException | None = None

    # --- opening ----------------------------------------------------------------------------------
    @staticmethod
    def exists(directory: Path) -> bool:
        """True when ``directory`` holds at least one segment file."""
        directory = Path(directory)
        return directory.is_dir() and any(name.endswith(".wal") for name in os.listdir(directory))

    @staticmethod
    def snapshot_marks(directory: Path) -> list[WalSnapshotMark]:
        """The snapshot marks in the log that a restart may start from, oldest first: those at or below
        the commit index of the last hard state (as etcd's ``ValidSnapshotEntries``: raft cannot start
        from a snapshot past its commit), plus ``(0, 0)``; every mark if the log has no hard state.

        A member writes the snapshot file before its WAL mark, so a crash between the two leaves a file
        the log does not know; pass these marks to ``Snapshotter.load_newest(available=...)`` to skip it.
        Reads without locking or repairing; damage is left for ``open`` to report.
        """
        marks = [_NO_MARK]
        hard_state = None
        for segment in list_segments(Path(directory)):
            found, last_state = scan_marks(segment.path.read_bytes())
            marks += found
            hard_state = last_state or hard_state
        if hard_state is None:
            return marks  # a log that never saw a hard state (a bootstrap snapshot only): nothing to break
        return [mark for mark in marks if mark.index <= hard_state.commit]

    @classmethod
    def create(cls, directory: Path, metadata: bytes, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> WAL:
        """A new, empty log in ``directory`` (which must be missing or empty) whose segments all start
        with ``metadata``. Built in a sibling temp directory and renamed into place, so a crash leaves
        either nothing or a complete first segment."""
        directory = Path(directory)
        if directory.exists() and any(directory.iterdir()):
            raise WalError(f"cannot create a WAL in {directory}: the directory is not empty")
        tmp = directory.with_name(directory.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)  # left by a create that crashed
        tmp.mkdir(mode=0o700, parents=True)
        buf = bytearray()
        encode_record(buf, RecordType.METADATA, metadata)
        fd = os.open(tmp / segment_name(0, 0), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, buf)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(tmp)
        os.rename(tmp, directory)  # replaces an empty directory atomically
        fsync_dir(directory.parent)
        segments = list_segments(directory)
        return cls(
            directory,
            segments,
            metadata=metadata,
            hard_state=None,
            last_index=0,
            segment_bytes=segment_bytes,
            lock_fd=_lock(directory),
        )

    @classmethod
    def open(
        cls,
        directory: Path,
        snapshot: WalSnapshotMark = _NO_MARK,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> tuple[WAL, WalContents]:
        """Read every record from the segment holding ``snapshot.index`` onward, repair a torn tail of
        the last segment (truncate it at the torn record, fsync), and return the log ready to append.

        Raises ``WalCorruptError`` for damage that is not a torn tail, and ``WalError`` when the
        directory has no log, the snapshot mark was never saved in it (``(0, 0)`` always is), or the
        log jumps past ``snapshot`` to a later snapshot mark whose snapshot the caller did not give.
        """
        directory = Path(directory)
        snapshot = WalSnapshotMark(*snapshot)
        if not directory.is_dir():
            raise WalError(f"no WAL in {directory}: the directory does not exist")
        lock_fd = _lock(directory)
        try:
            for name in os.listdir(directory):
                if name.endswith(".wal.tmp"):
                    os.remove(directory / name)  # a cut that crashed before its rename
            segments = list_segments(directory)
            if not segments:
                raise WalError(f"no WAL in {directory}: no *.wal segment files")
            start = search_segment(segments, snapshot.index)
            if start is None:
                raise WalError(
                    f"wal: snapshot not found: no segment in {directory} reaches back to index "
                    f"{snapshot.index} (the log was released past it)"
                )
            reader, torn_at = _read(directory, segments[start:], snapshot)
            contents = reader.finish(directory)
            if torn_at is not None:
                _truncate(segments[-1].path, torn_at)
        except BaseException:
            os.close(lock_fd)
            raise
        wal = cls(
            directory,
            segments,
            metadata=contents.metadata,
            hard_state=contents.hard_state,
            last_index=reader.last_index,
            segment_bytes=segment_bytes,
            lock_fd=lock_fd,
        )
        return wal, contents

    # --- writing ----------------------------------------------------------------------------------
    @property
    def last_index(self) -> int:
        """Index of the last entry written, or of the last snapshot mark if that is later."""
        return self._last_index

    @property
    def hard_state(self) -> HardState | None:
        """The last hard state saved (or read at open)."""
        return self._hard_state

    def save(self, hard_state: HardState | None, entries: list[Entry], *, sync: bool = True) -> None:
        """Append ``entries`` (which may overwrite: entries >= entries[0].index are replaced) and then
        ``hard_state``, with one write() and, when ``sync`` and anything was written, one fdatasync: the
        group commit of a whole raft Ready. Cuts a new segment afterwards if this one grew too big."""
        if entries:
            first = entries[0].index
            if first > self._last_index + 1 or entries[-1].index != first + len(entries) - 1:
                raise WalError(
                    f"cannot save entries {first}..{entries[-1].index} ({len(entries)} of them) after "
                    f"last index {self._last_index}: they must be consecutive and leave no gap"
                )
        buf = bytearray()
        if entries:
            encode_entries(buf, entries)
        if hard_state is not None:
            encode_hard_state(buf, hard_state)
        if not buf:
            return
        self._write(buf, sync=sync)
        if entries:
            self._last_index = entries[-1].index
        if hard_state is not None:
            self._hard_state = hard_state
        if self._size > self._segment_bytes:
            self._guarded(self._cut)

    def save_snapshot(self, mark: WalSnapshotMark) -> None:
        """Record (fsynced) that a snapshot at ``mark`` is durable; ``open(directory, mark)`` then starts
        from it. A mark past the last entry (a snapshot received from the leader) moves ``last_index``."""
        buf = bytearray()
        encode_snapshot(buf, WalSnapshotMark(*mark))
        self._write(buf, sync=True)
        self._last_index = max(self._last_index, mark.index)
        if self._size > self._segment_bytes:
            self._guarded(self._cut)

    def release_before(self, index: int) -> None:
        """Delete the segments wholly before the one a read starting at ``index`` needs (never that one,
        never the last). Call it once a snapshot at ``index`` and its WAL mark are durable."""
        position = search_segment(self._segments, index)
        if not position:
            return
        for segment in self._segments[:position]:  # oldest first: a crash leaves no hole in the sequence
            os.remove(segment.path)
        del self._segments[:position]
        fsync_dir(self._directory)

    def close(self) -> None:
        """Sync what an unsynced save left, and release the files. Safe to call twice."""
        try:
            if self._fd is not None:
                if self._failed is None:
                    os.fdatasync(self._fd)
                os.close(self._fd)
        finally:
            self._fd = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> WAL:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals --------------------------------------------------------------------------------
    def _write(self, buf: bytearray, *, sync: bool) -> None:
        if self._failed is not None:
            failure = self._failed
            raise WalError(f"the WAL in {self._directory} failed earlier ({failure}); restart the member")
        if self._fd is None:
            raise WalError(f"the WAL in {self._directory} is closed")
        try:
            write_all(self._fd, buf)
            if sync:
                os.fdatasync(self._fd)
        except OSError as exc:
            self._failed = exc
            # Cut off a partial record so the file does not end in garbage that a later append would hide.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise
        self._size += len(buf)

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except OSError as exc:
            self._failed = exc
            raise

    def _cut(self) -> None:
        """Start a new segment named after the next index; it opens with the metadata and the last hard
        state, so a read that starts there (after older segments are released) still finds both."""
        assert self._fd is not None
        os.fdatasync(self._fd)
        seq = self._segments[-1].seq + 1
        name = segment_name(seq, self._last_index + 1)
        buf = bytearray()
        encode_record(buf, RecordType.METADATA, self._metadata)
        if self._hard_state is not None:
            encode_hard_state(buf, self._hard_state)
        tmp = self._directory / (name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        try:
            write_all(fd, buf)
            os.fdatasync(fd)
            os.rename(tmp, self._directory / name)
            fsync_dir(self._directory)
        except BaseException:
            os.close(fd)
            raise
        os.close(self._fd)
        self._fd = fd
        self._size = len(buf)
        self._segments.append(Segment(seq, self._last_index + 1, self._directory / name))


class _Reader:
    """Folds the records of consecutive segments into a WalContents, checking them as it goes."""

    def __init__(self, start: WalSnapshotMark) -> None:
        self.start = start
        self.metadata: bytes | None = None
        self.hard_state: HardState | None = None
        self.entries: list[Entry] = []
        self.last_index: int | None = None  # the log's last index, whether or not it is after start
        self.found_start = start.index == 0

    def feed(self, segment: Segment, records: list[Entry | tuple[int, RecordType, object]]) -> None:
        first = records[0] if records else None
        if type(first) is not tuple or first[1] is not RecordType.METADATA:
            raise WalCorruptError(segment.path, 0, "the segment does not start with a metadata record")
        if self.metadata is None:
            self.metadata = first[2]
        elif first[2] != self.metadata:
            raise WalCorruptError(segment.path, 0, "the metadata differs from the previous segment's")
        last = self.last_index if self.last_index is not None else max(segment.first_index - 1, 0)
        start = self.start.index
        entries = self.entries
        for record in itertools.islice(records, 1, None):
            if type(record) is Entry:
                index = record.index
                if index > last + 1:
                    offset = entry_offset(segment.path.read_bytes(), index)
                    reason = f"entry {index} follows entry {last}: the entries between are missing"
                    raise WalCorruptError(segment.path, offset, reason)
                last = index
                if index > start:
                    position = index - start - 1
                    if position < len(entries):
                        del entries[position:]
                    elif position > len(entries):
                        raise self._jump_error(index)
                    entries.append(record)
                continue
            offset, kind, value = record
            if kind is RecordType.HARD_STATE:
                self.hard_state = value
            elif kind is RecordType.SNAPSHOT:
                last = max(last, value.index)
                self._check_mark(value)
            else:
                raise WalCorruptError(segment.path, offset, f"an unexpected {kind.name} record")
        self.last_index = last

    def _check_mark(self, mark: WalSnapshotMark) -> None:
        if mark.index == self.start.index and self.start.index:
            if mark.term != self.start.term:
                raise WalError(
                    f"wal: snapshot mismatch: the log marks index {mark.index} with term {mark.term}, "
                    f"the snapshot has term {self.start.term}"
                )
            self.found_start = True

    def _jump_error(self, index: int) -> WalError:
        have = self.start.index + len(self.entries)
        return WalError(
            f"the log continues at entry {index} after a later snapshot mark, but entries "
            f"{have + 1}..{index - 1} after the given snapshot at {self.start.index} are not in it: "
            "open the WAL with that later snapshot (its snapshot file is missing or unreadable)"
        )

    def finish(self, directory: Path) -> WalContents:
        if not self.found_start:
            raise WalError(
                f"wal: snapshot not found: {directory} has no mark for the snapshot at index "
                f"{self.start.index} term {self.start.term}"
            )
        assert self.metadata is not None and self.last_index is not None
        self.last_index = max(self.last_index, self.start.index)
        return WalContents(self.metadata, self.hard_state, self.start, self.entries)


def _read(directory: Path, segments: list[Segment], start: WalSnapshotMark) -> tuple[_Reader, int | None]:
    """Decode and fold ``segments``; returns the reader and where the last segment's torn tail starts."""
    reader = _Reader(start)
    torn_at = None
    # Decoding allocates a few objects per record and frees none: with the collector on, its passes over
    # the ever-growing young generation cost more than the decoding (measured: 2x on 200,000 entries).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for segment in segments:
            decoded = decode_segment(str(segment.path), segment.path.read_bytes())
            if decoded.torn_at is not None:
                if segment is not segments[-1]:
                    reason = f"{decoded.torn_reason}, in a segment that is not the last"
                    raise WalCorruptError(segment.path, decoded.torn_at, reason)
                torn_at = decoded.torn_at
            reader.feed(segment, decoded.records)
    finally:
        if collecting:
            gc.enable()
    return reader, torn_at


def _lock(directory: Path) -> int:
    """Hold an exclusive lock on the directory so two processes never append to one log."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WalError(f"the WAL in {directory} is in use by another process or WAL object") from None
    return fd


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)

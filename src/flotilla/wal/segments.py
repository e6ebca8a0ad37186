"""Segment file names, directory listing and the fsync helpers the WAL needs."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from .errors import WalCorruptError

_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")


class Segment(NamedTuple):
    """One segment file: ``seq`` counts segments from 0; ``first_index`` is the index of the first entry
    it may hold (the log's last index + 1 when it was cut; 0 for the first segment)."""

    seq: int
    first_index: int
    path: Path


def segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}.wal"


def list_segments(directory: Path) -> list[Segment]:
    """The segment files in ``directory`` by sequence; other files (temp files, locks) are ignored.

    Raises ``WalCorruptError`` when the sequence has a hole: a segment between the first and the last
    is missing, so records between them are lost.
    """
    found = []
    for name in os.listdir(directory):
        match = _NAME.match(name)
        if match:
            found.append(Segment(int(match[1], 16), int(match[2], 16), directory / name))
    found.sort()
    for before, after in zip(found, found[1:], strict=False):
        if after.seq != before.seq + 1:
            reason = f"segment {before.seq + 1:016x} is missing (the previous one is {before.path.name})"
            raise WalCorruptError(after.path, 0, reason)
    return found


def search_segment(segments: list[Segment], index: int) -> int | None:
    """Position of the segment a read that starts after ``index`` must begin with: the last one whose
    ``first_index`` is at or below ``index`` (names are not monotonic after overwrites, so search from
    the end, as etcd does). None when every segment starts after ``index``."""
    for position in range(len(segments) - 1, -1, -1):
        if segments[position].first_index <= index:
            return position
    return None


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (creations, renames, deletions) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until everything is written (a regular file may take less than asked in one call)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]

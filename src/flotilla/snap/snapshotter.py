"""Snapshot files: one per raft snapshot, written atomically, checked on load."""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Collection
from pathlib import Path

from flotilla.raft.types import ConfState, Snapshot

from .errors import SnapError

_MAGIC = b"FSNP"
_VERSION = 1
_HEADER = struct.Struct("<4sBQQIIQ")  # magic, version, index, term, voters, learners, data length
_CRC = struct.Struct("<I")
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


def snapshot_name(term: int, index: int) -> str:
    return f"{term:016x}-{index:016x}.snap"


def encode_snapshot(snapshot: Snapshot) -> bytes:
    voters = sorted(snapshot.conf_state.voters)
    learners = sorted(snapshot.conf_state.learners)
    data = bytes(snapshot.data)
    header = _HEADER.pack(
        _MAGIC, _VERSION, snapshot.index, snapshot.term, len(voters), len(learners), len(data)
    )
    members = struct.pack(f"<{len(voters) + len(learners)}Q", *voters, *learners)
    body = b"".join((header, members, data))
    return body + _CRC.pack(zlib.crc32(body))


def decode_snapshot(path: Path, content: bytes) -> Snapshot:
    """Parse a snapshot file's bytes; SnapError says what is wrong with ``path``."""
    if len(content) < _HEADER.size + _CRC.size:
        raise SnapError(f"snapshot {path} is truncated ({len(content)} bytes)")
    body = memoryview(content)[: -_CRC.size]
    (crc,) = _CRC.unpack_from(content, len(content) - _CRC.size)
    if zlib.crc32(body) != crc:
        raise SnapError(f"snapshot {path} fails its CRC")
    magic, version, index, term, n_voters, n_learners, data_length = _HEADER.unpack_from(content)
    if magic != _MAGIC or version != _VERSION:
        raise SnapError(f"snapshot {path} is not a version-{_VERSION} Flotilla snapshot file")
    offset = _HEADER.size
    if offset + 8 * (n_voters + n_learners) + data_length != len(body):
        raise SnapError(f"snapshot {path} has sizes that do not add up to its length")
    voters = struct.unpack_from(f"<{n_voters}Q", content, offset)
    offset += 8 * n_voters
    learners = struct.unpack_from(f"<{n_learners}Q", content, offset)
    offset += 8 * n_learners
    data = content[offset : offset + data_length]
    return Snapshot(index, term, ConfState(frozenset(voters), frozenset(learners)), data)


class Snapshotter:
    """The snapshot files of one member, in ``directory``.

    File ``%016x-%016x.snap`` (term, index) holds, little-endian::

        magic "FSNP" | version:u8 (1) | index:u64 | term:u64 | n_voters:u32 | n_learners:u32 |
        data_length:u64 | voters:u64 * n_voters | learners:u64 * n_learners | data | crc32:u32

    where the CRC (``zlib.crc32``) covers every byte before it. Not thread-safe.
    """

    def __init__(self, directory: Path) -> None:
        """Use ``directory`` (created if missing); leftovers of a save that crashed are removed."""
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in os.listdir(self.directory):
            if name.endswith(".snap.tmp"):
                os.remove(self.directory / name)

    def save(self, snapshot: Snapshot) -> None:
        """Write ``snapshot`` durably: temp file, fsync, rename, fsync of the directory. An empty
        snapshot (index 0) is not written, as etcd skips it."""
        if snapshot.is_empty():
            return
        final = self.directory / snapshot_name(snapshot.term, snapshot.index)
        tmp = final.with_name(final.name + ".tmp")
        content = encode_snapshot(snapshot)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(content)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
            _fsync_dir(self.directory)
        except OSError as exc:
            raise SnapError(f"cannot save snapshot {final}: {exc}") from exc

    def load_newest(self, available: Collection[tuple[int, int]] | None = None) -> Snapshot | None:
        """The newest snapshot that reads back intact, or None if there is none.

        A file that fails its checks is renamed to ``*.broken`` (as etcd does) and the next older one
        is tried. With ``available`` (``(index, term)`` pairs, e.g. ``WAL.snapshot_marks``), files whose
        snapshot is not among them are passed over and left alone: the WAL never recorded them.
        """
        wanted = None if available is None else {(index, term) for index, term in available}
        for path in reversed(self._files()):
            match = _NAME.match(path.name)
            assert match is not None
            term, index = int(match[1], 16), int(match[2], 16)
            if wanted is not None and (index, term) not in wanted:
                continue
            try:
                content = path.read_bytes()
            except OSError as exc:
                raise SnapError(f"cannot read snapshot {path}: {exc}") from exc
            try:
                snapshot = decode_snapshot(path, content)
                if (snapshot.term, snapshot.index) != (term, index):
                    raise SnapError(f"snapshot {path} holds term {snapshot.term} index {snapshot.index}")
            except SnapError:
                os.rename(path, path.with_name(path.name + ".broken"))
                continue
            return snapshot
        return None

    def purge(self, keep: int = 5) -> None:
        """Delete every snapshot file but the newest ``keep`` (``*.broken`` files stay for inspection)."""
        if keep < 1:
            raise SnapError(f"purge must keep at least one snapshot, not {keep}")
        for path in self._files()[:-keep]:
            os.remove(path)

    def _files(self) -> list[Path]:
        # Names sort as (term, index): zero-padded hex of fixed width, and terms never go backwards.
        names = sorted(name for name in os.listdir(self.directory) if _NAME.match(name))
        return [self.directory / name for name in names]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

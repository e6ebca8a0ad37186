"""Record encoding and the decoder of one segment file (the hot paths of save() and open()).

Every record is ``crc:u32 | length:u32 | type:u8 | payload[length]`` (little-endian). The CRC is
``zlib.crc32`` of everything after itself: length, type and payload, so a flipped length or type is
caught as surely as a flipped payload byte.
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum
from typing import NamedTuple

from flotilla.raft.types import Entry, EntryType, HardState

from .errors import WalCorruptError


class RecordType(IntEnum):
    # 0 is never used: a zero-filled header must not decode as a valid record.
    METADATA = 1  # first record of every segment: the bytes given to WAL.create()
    ENTRY = 2  # term:u64 index:u64 type:u8 data
    HARD_STATE = 3  # term:u64 vote:u64 commit:u64
    SNAPSHOT = 4  # index:u64 term:u64, a snapshot mark


class WalSnapshotMark(NamedTuple):
    """A snapshot's position in the log: the index and term of its last entry."""

    index: int
    term: int


HEADER = struct.Struct("<IIB")
HEADER_SIZE = HEADER.size  # 9
_LEN_TYPE = struct.Struct("<IB")
_CRC = struct.Struct("<I")
# An entry record's header and fixed payload fields, decoded in one call.
_ENTRY_FULL = struct.Struct("<IIBQQB")
_ENTRY_FIXED = struct.Struct("<QQB")
_ENTRY_BODY = struct.Struct("<IBQQB")  # length, type, then the fixed entry fields: what the CRC starts with
ENTRY_FIXED_SIZE = _ENTRY_FIXED.size  # 17
_HARD_STATE = struct.Struct("<QQQ")
_SNAPSHOT = struct.Struct("<QQ")

_ENTRY_TYPES = tuple(EntryType)


def encode_record(buf: bytearray, record_type: RecordType, payload: bytes) -> None:
    """Append one record to ``buf``."""
    body = _LEN_TYPE.pack(len(payload), record_type)
    buf += _CRC.pack(zlib.crc32(payload, zlib.crc32(body)))
    buf += body
    buf += payload


def encode_entries(buf: bytearray, entries: list[Entry]) -> None:
    """Append one ENTRY record per entry to ``buf`` (the group-commit hot path)."""
    pack_body = _ENTRY_BODY.pack
    pack_crc = _CRC.pack
    crc32 = zlib.crc32
    fixed = ENTRY_FIXED_SIZE
    kind = RecordType.ENTRY.value
    for term, index, entry_type, data in entries:
        body = pack_body(fixed + len(data), kind, term, index, entry_type)
        buf += pack_crc(crc32(data, crc32(body)))
        buf += body
        buf += data


def encode_hard_state(buf: bytearray, hard_state: HardState) -> None:
    encode_record(buf, RecordType.HARD_STATE, _HARD_STATE.pack(*hard_state))


def encode_snapshot(buf: bytearray, mark: WalSnapshotMark) -> None:
    encode_record(buf, RecordType.SNAPSHOT, _SNAPSHOT.pack(mark.index, mark.term))


class SegmentRecords(NamedTuple):
    """What one segment file held: its records in order, and where a torn tail begins (or None).

    ``records`` holds an ``Entry`` for each ENTRY record (the bulk: kept bare to save memory and time)
    and ``(offset, type, value)`` for the others, value being the metadata bytes, a ``HardState`` or a
    ``WalSnapshotMark``. ``torn_at`` is the offset of a bad record that looks like an interrupted write
    (see ``decode_segment``); the caller decides whether that is allowed.
    """

    records: list[Entry | tuple[int, RecordType, object]]
    torn_at: int | None
    torn_reason: str


def decode_segment(path: str, data: bytes) -> SegmentRecords:
    """Decode every record of one segment's bytes.

    A bad record that runs past the end of the data, or whose bytes from its start to the end are all
    zero, or that fails its CRC, has a zeroed sector-aligned piece and is followed by nothing but zeros
    (or by nothing), is reported as ``torn_at`` (decoding stops there). Any other bad record raises
    ``WalCorruptError`` naming ``path`` and the offset.
    """
    view = memoryview(data)
    size = len(data)
    records: list[Entry | tuple[int, RecordType, object]] = []
    append = records.append
    unpack_entry = _ENTRY_FULL.unpack_from
    unpack_header = HEADER.unpack_from
    crc32 = zlib.crc32
    new_tuple = tuple.__new__  # NamedTuple's own __new__ is Python code: too slow for 10^5 entries
    entry_kind = RecordType.ENTRY.value
    entry_types = _ENTRY_TYPES
    max_entry_type = len(entry_types) - 1
    fixed = ENTRY_FIXED_SIZE
    head = HEADER_SIZE
    offset = 0
    while offset < size:
        if offset + head > size:
            return SegmentRecords(records, offset, "a record header runs past the end of the file")
        crc, length, kind = unpack_header(data, offset)
        end = offset + head + length
        if end > size:
            reason = f"a record of {length} bytes runs past the end of the file"
            return SegmentRecords(records, offset, reason)
        if crc32(view[offset + 4 : end]) != crc:
            # Torn: nothing but zeros (space the filesystem allocated but the write never filled) from
            # the record's start, or after its end: it was the last write and it did not complete.
            # An interrupted write leaves whole sectors unwritten (sector writes are atomic); a record
            # with no zeroed sector that fails its CRC was written and then damaged: corruption, even at
            # the end (dropping it could drop an acknowledged write). etcd's rule, isTornEntry.
            if data.count(0, offset) == size - offset or (
                data.count(0, end) == size - end and _has_zeroed_sector(data, offset, end)
            ):
                return SegmentRecords(records, offset, "the last record fails its CRC")
            raise WalCorruptError(path, offset, "CRC mismatch in a record that is not the last one")
        if kind == entry_kind and length >= fixed:
            _, _, _, term, index, entry_type = unpack_entry(data, offset)
            if entry_type > max_entry_type:
                raise WalCorruptError(path, offset, f"unknown entry type {entry_type}")
            payload = data[offset + head + fixed : end]
            append(new_tuple(Entry, (term, index, entry_types[entry_type], payload)))
        else:
            append(_decode_other(path, offset, kind, view[offset + head : end]))
        offset = end
    return SegmentRecords(records, None, "")


SECTOR_BYTES = 512


def _has_zeroed_sector(data: bytes, start: int, end: int) -> bool:
    """True if some sector-aligned piece of ``data[start:end]`` is all zeros."""
    while start < end:
        piece_end = min(end, (start // SECTOR_BYTES + 1) * SECTOR_BYTES)
        if data.count(0, start, piece_end) == piece_end - start:
            return True
        start = piece_end
    return False


def entry_offset(data: bytes, index: int) -> int:
    """Byte offset of the first ENTRY record with ``index`` in a segment's bytes, for error messages
    (entries are decoded without their offsets); -1 if there is none."""
    offset = 0
    while offset + HEADER_SIZE <= len(data):
        _, length, kind = HEADER.unpack_from(data, offset)
        if kind == RecordType.ENTRY and length >= ENTRY_FIXED_SIZE:
            if _ENTRY_FIXED.unpack_from(data, offset + HEADER_SIZE)[1] == index:
                return offset
        offset += HEADER_SIZE + length
    return -1


def _decode_other(path: str, offset: int, kind: int, payload: memoryview) -> tuple[int, RecordType, object]:
    # Returns (offset, type, value); split out so the entry fast path stays short.
    if kind == RecordType.METADATA:
        return offset, RecordType.METADATA, bytes(payload)
    if kind == RecordType.HARD_STATE and len(payload) == _HARD_STATE.size:
        return offset, RecordType.HARD_STATE, HardState(*_HARD_STATE.unpack(payload))
    if kind == RecordType.SNAPSHOT and len(payload) == _SNAPSHOT.size:
        return offset, RecordType.SNAPSHOT, WalSnapshotMark(*_SNAPSHOT.unpack(payload))
    if kind in (RecordType.ENTRY, RecordType.HARD_STATE, RecordType.SNAPSHOT):
        reason = f"a {RecordType(kind).name} record of the wrong size ({len(payload)} bytes)"
        raise WalCorruptError(path, offset, reason)
    raise WalCorruptError(path, offset, f"unknown record type {kind}")


def scan_marks(data: bytes) -> tuple[list[WalSnapshotMark], HardState | None]:
    """The snapshot marks and the last hard state in a segment's bytes, skipping entries undecoded.
    Lenient: stops quietly at the first bad record (``WAL.open`` is the one that judges damage)."""
    view = memoryview(data)
    marks: list[WalSnapshotMark] = []
    hard_state = None
    offset = 0
    while offset + HEADER_SIZE <= len(data):
        crc, length, kind = HEADER.unpack_from(data, offset)
        end = offset + HEADER_SIZE + length
        if end > len(data) or zlib.crc32(view[offset + 4 : end]) != crc:
            break
        if kind == RecordType.SNAPSHOT and length == _SNAPSHOT.size:
            marks.append(WalSnapshotMark(*_SNAPSHOT.unpack_from(data, offset + HEADER_SIZE)))
        elif kind == RecordType.HARD_STATE and length == _HARD_STATE.size:
            hard_state = HardState(*_HARD_STATE.unpack_from(data, offset + HEADER_SIZE))
        offset = end
    return marks, hard_state

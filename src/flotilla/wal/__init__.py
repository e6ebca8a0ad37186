"""The write-ahead log: raft entries, hard states and snapshot marks, durable before they count.

Layout: a directory of segment files ``%016x-%016x.wal`` (sequence number, index of the first entry
the segment may hold), named as etcd names them. The sequence has no holes; ``release_before`` deletes
from the oldest end only. A new segment is written under ``<name>.tmp``, fsynced and renamed into
place (then the directory is fsynced), so a segment file always starts complete.

Each segment is a run of records::

    crc:u32 | length:u32 | type:u8 | payload[length]          (little-endian)

``crc`` is ``zlib.crc32`` of length, type and payload. Record types and payloads:

    1 METADATA    the opaque bytes given to ``WAL.create`` (member and cluster ids); first record of
                  every segment, identical in all of them
    2 ENTRY       term:u64 index:u64 entry_type:u8 data
    3 HARD_STATE  term:u64 vote:u64 commit:u64; a new segment repeats the last one after its metadata
    4 SNAPSHOT    index:u64 term:u64, a snapshot mark (``save_snapshot``)

Type 0 is never used, so zero-filled space never decodes. An ENTRY whose index is at or below the
log's last index replaces that entry and everything after it (raft's conflicting-suffix overwrite).

Recovery: in the last segment, a record that runs past end-of-file, whose bytes up to end-of-file are
all zero, or that fails its CRC and ends exactly at end-of-file (or is followed only by zeros, space
the filesystem allocated for a write that never landed) is a torn write: ``open`` truncates the
file there and carries on. Anything else bad (a CRC failure followed by more data, a bad record in an
earlier segment, an unknown type, a gap in entry indexes, a missing segment) raises
``WalCorruptError`` naming the file and byte offset.
"""

from .errors import WalCorruptError, WalError
from .records import WalSnapshotMark
from .wal import WAL, WalContents

__all__ = ["WAL", "WalContents", "WalCorruptError", "WalError", "WalSnapshotMark"]

"""The backend encoding of the v3 keyspace: revision keys and version records.

The backend's "key" bucket maps a *revision key* to a *record*, one entry per retained version of a key:

- revision key: 8-byte big-endian main revision, ``b"_"``, 8-byte big-endian sub revision (17 bytes, so
  byte order is revision order, as in etcd). A tombstone's key carries a trailing ``b"t"`` (18 bytes),
  also as in etcd, so a scan can tell deletions apart without decoding the record.
- record: a little-endian ``struct`` header (create_revision, mod_revision, version, lease, key length),
  then the key, then the value. A tombstone's record is the tombstone KeyValue (version 0, only key and
  mod_revision set), so the record alone also identifies it.

The format is ours (etcd stores a protobuf ``mvccpb.KeyValue``); it is compact and decodes with one
``unpack_from`` and two slices.
"""

from __future__ import annotations

import struct

from .types import KeyValue, Revision

__all__ = [
    "TOMBSTONE_MARK",
    "decode_record",
    "encode_record",
    "parse_revision_key",
    "revision_key",
]

TOMBSTONE_MARK = b"t"

_REVISION = struct.Struct(">QcQ")
_REVISION_SIZE = _REVISION.size  # 17
_HEADER = struct.Struct("<qqqqI")
_HEADER_SIZE = _HEADER.size

# Bound once: these run for every version written or restored.
_pack_revision = _REVISION.pack
_unpack_revision = _REVISION.unpack_from
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_new_tuple = tuple.__new__


def revision_key(revision: Revision, tombstone: bool = False) -> bytes:
    """The backend key of the version written at ``revision``; ``tombstone`` appends etcd's ``b"t"``."""
    key = _pack_revision(revision[0], b"_", revision[1])
    return key + TOMBSTONE_MARK if tombstone else key


def parse_revision_key(data: bytes) -> tuple[Revision, bool]:
    """The revision and tombstone flag of a backend key made by :func:`revision_key`.

    Raises ValueError if ``data`` is not such a key."""
    size = len(data)
    if size == _REVISION_SIZE:
        tombstone = False
    elif size == _REVISION_SIZE + 1 and data[_REVISION_SIZE:] == TOMBSTONE_MARK:
        tombstone = True
    else:
        raise ValueError(f"not a revision key: {data!r}")
    main, separator, sub = _unpack_revision(data)
    if separator != b"_":
        raise ValueError(f"not a revision key: {data!r}")
    return Revision(main, sub), tombstone


def encode_record(kv: KeyValue) -> bytes:
    """The backend record of one version (a live KeyValue or a tombstone, version 0)."""
    key = kv[0]
    return _pack_header(kv[1], kv[2], kv[3], kv[5], len(key)) + key + kv[4]


def decode_record(data: bytes) -> KeyValue:
    """The KeyValue encoded by :func:`encode_record` (a tombstone comes back with version 0).

    Raises ValueError if ``data`` is shorter than its header says."""
    try:
        create_revision, mod_revision, version, lease, key_size = _unpack_header(data)
    except struct.error as exc:
        raise ValueError(f"truncated mvcc record ({len(data)} bytes)") from exc
    key_end = _HEADER_SIZE + key_size
    if len(data) < key_end:
        raise ValueError(f"truncated mvcc record ({len(data)} bytes, key ends at {key_end})")
    return _new_tuple(
        KeyValue, (data[_HEADER_SIZE:key_end], create_revision, mod_revision, version, data[key_end:], lease)
    )

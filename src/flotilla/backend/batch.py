"""The write batch: plain data the member builds on the event loop and a backend applies in one
transaction. Buckets and key limits are checked here, when an op is added, so that a bad op is reported
where it was made and a batch that reaches ``Backend.write`` can always be applied."""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

# The buckets of the v3 keyspace, as in etcd's bbolt file: "key" maps a revision (8-byte main,
# "_", 8-byte sub) to an encoded KeyValue; "meta" holds the applied raft index and the compact revision.
BUCKETS: tuple[str, ...] = ("key", "meta", "lease", "members", "members_removed", "alarm")

# LMDB's limit for a key (MDB_MAXKEYSIZE in its default build); every backend keeps it so that the
# in-memory twin refuses exactly what the real one would.
MAX_KEY_BYTES = 511

_BUCKET_SET = frozenset(BUCKETS)


class OpKind(IntEnum):
    PUT = 1
    DELETE = 2
    DELETE_RANGE = 3


class Op(NamedTuple):
    """One write. ``value`` is the value of a PUT, the exclusive end of a DELETE_RANGE, else empty."""

    kind: OpKind
    bucket: str
    key: bytes
    value: bytes = b""


class WriteBatch:
    """An ordered list of writes, applied in order (a later put of a key wins) and atomically."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def put(self, bucket: str, key: bytes, value: bytes) -> None:
        _check(bucket, key)
        self.ops.append(Op(OpKind.PUT, bucket, bytes(key), bytes(value)))

    def delete(self, bucket: str, key: bytes) -> None:
        """Delete ``key``; deleting a missing key is not an error."""
        _check(bucket, key)
        self.ops.append(Op(OpKind.DELETE, bucket, bytes(key)))

    def delete_range(self, bucket: str, start: bytes, end: bytes) -> None:
        """Delete every key in ``[start, end)`` (bytewise order); an empty ``start`` is the first key."""
        _check(bucket, start, allow_empty=True)
        self.ops.append(Op(OpKind.DELETE_RANGE, bucket, bytes(start), bytes(end)))

    def __len__(self) -> int:
        return len(self.ops)

    def __repr__(self) -> str:
        return f"<WriteBatch of {len(self.ops)} ops>"


def _check(bucket: str, key: bytes, *, allow_empty: bool = False) -> None:
    if bucket not in _BUCKET_SET:
        raise ValueError(f"unknown bucket {bucket!r}; the buckets are {BUCKETS}")
    if len(key) > MAX_KEY_BYTES or (not key and not allow_empty):
        raise ValueError(f"a backend key must be 1 to {MAX_KEY_BYTES} bytes, not {len(key)}")

"""The v3 keyspace: revisions, ranges, transactions, compaction, leases and watches (a core without I/O)."""

from .errors import (
    CompactedError,
    FutureRevisionError,
    LeaseError,
    LeaseExistsError,
    LeaseNotFoundError,
    MvccError,
)
from .store import KeyValueStore, RangeResult, WriteTxn
from .types import Event, EventType, KeyValue, Revision

__all__ = [
    "CompactedError",
    "Event",
    "EventType",
    "FutureRevisionError",
    "KeyValue",
    "KeyValueStore",
    "LeaseError",
    "LeaseExistsError",
    "LeaseNotFoundError",
    "MvccError",
    "RangeResult",
    "Revision",
    "WriteTxn",
]

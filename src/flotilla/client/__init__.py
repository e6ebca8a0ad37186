"""The asyncio etcd v3 client every Flotilla service uses (DESIGN decision 2): ``EtcdClient`` and the
values, transaction builders and errors that go with it."""

from flotilla.client.client import EtcdClient
from flotilla.client.errors import (
    AuthError,
    ClientError,
    Compacted,
    DeadlineExceeded,
    FutureRevision,
    InvalidRequest,
    LeaseNotFound,
    NoLeader,
    NoSpace,
    PermissionDenied,
    Unavailable,
)
from flotilla.client.keepalive import KeepAlive
from flotilla.client.txn import Compare, Op, prefix_range_end
from flotilla.client.types import (
    DeleteResult,
    Event,
    KeyValue,
    Lease,
    LeaseInfo,
    Member,
    PutResult,
    RangeResult,
    Status,
    TlsConfig,
    TxnResult,
    WatchResponse,
)
from flotilla.client.watch import Watch

__all__ = [
    "AuthError",
    "ClientError",
    "Compacted",
    "Compare",
    "DeadlineExceeded",
    "DeleteResult",
    "EtcdClient",
    "Event",
    "FutureRevision",
    "InvalidRequest",
    "KeepAlive",
    "KeyValue",
    "Lease",
    "LeaseInfo",
    "LeaseNotFound",
    "Member",
    "NoLeader",
    "NoSpace",
    "Op",
    "PermissionDenied",
    "PutResult",
    "RangeResult",
    "Status",
    "TlsConfig",
    "TxnResult",
    "Unavailable",
    "Watch",
    "WatchResponse",
    "prefix_range_end",
]

"""The values the client returns: immutable, plain Python, independent of the protobuf classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from flotilla.etcd.api import kv_pb2, rpc_pb2

__all__ = [
    "DeleteResult",
    "Event",
    "KeyValue",
    "Lease",
    "LeaseInfo",
    "Member",
    "PutResult",
    "RangeResult",
    "Status",
    "TlsConfig",
    "TxnResult",
    "WatchResponse",
    "to_bytes",
]


def to_bytes(value: str | bytes, what: str = "key") -> bytes:
    """Keys and values are bytes on the wire; ``str`` is taken as UTF-8."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"a {what} must be str or bytes, not {type(value).__name__}: {value!r}")


@dataclass(frozen=True)
class TlsConfig:
    """Files for a TLS connection (PEM). Without ``ca_file`` the system's roots verify the server; a
    ``cert_file``/``key_file`` pair authenticates the client (etcd's --client-cert-auth)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""  # overrides the name checked against the server certificate


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0

    @property
    def key_str(self) -> str:
        return self.key.decode()

    @property
    def value_str(self) -> str:
        return self.value.decode()

    @classmethod
    def from_pb(cls, kv: kv_pb2.KeyValue) -> KeyValue:
        return cls(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


@dataclass(frozen=True)
class RangeResult:
    """``revision`` is the store revision the range was read at (the response header's)."""

    kvs: list[KeyValue]
    count: int
    more: bool
    revision: int


@dataclass(frozen=True)
class PutResult:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True)
class DeleteResult:
    revision: int
    deleted: int
    prev_kvs: list[KeyValue] = field(default_factory=list)


@dataclass(frozen=True)
class TxnResult:
    """``responses`` holds one RangeResult/PutResult/DeleteResult per op of the branch that ran."""

    succeeded: bool
    responses: list[RangeResult | PutResult | DeleteResult]
    revision: int


@dataclass(frozen=True)
class Event:
    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev_kv: KeyValue | None = None

    @classmethod
    def from_pb(cls, event: kv_pb2.Event) -> Event:
        kind = "DELETE" if event.type == kv_pb2.Event.DELETE else "PUT"
        prev = KeyValue.from_pb(event.prev_kv) if event.HasField("prev_kv") else None
        return cls(kind, KeyValue.from_pb(event.kv), prev)


@dataclass(frozen=True)
class WatchResponse:
    """A batch of events in revision order; ``revision`` is the store revision when it was sent (a
    progress notification has no events and says every change up to ``revision`` was delivered)."""

    events: list[Event]
    revision: int


@dataclass(frozen=True)
class Lease:
    id: int
    ttl_s: int


@dataclass(frozen=True)
class LeaseInfo:
    id: int
    ttl_s: int  # remaining
    granted_ttl_s: int
    keys: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class Status:
    endpoint: str
    member_id: int
    leader: int
    raft_term: int
    raft_index: int
    revision: int
    version: str
    db_size: int
    is_learner: bool = False

    @classmethod
    def from_pb(cls, endpoint: str, r: rpc_pb2.StatusResponse) -> Status:
        return cls(
            endpoint, r.header.member_id, r.leader, r.raftTerm, r.raftIndex, r.header.revision, r.version,
            r.dbSize, r.isLearner,
        )  # fmt: skip


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: list[str]
    client_urls: list[str]
    is_learner: bool = False

    @classmethod
    def from_pb(cls, m: rpc_pb2.Member) -> Member:
        return cls(m.ID, m.name, list(m.peerURLs), list(m.clientURLs), m.isLearner)

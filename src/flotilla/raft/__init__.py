"""Raft consensus without I/O: feed it ticks and messages, get back Ready values to act on."""

from .bugs import Bug
from .codec import CodecError, decode_message, encode_message
from .config import Config
from .errors import (
    CompactedError,
    ConfChangePending,
    ConfigError,
    ProposalDropped,
    RaftError,
    SnapshotOutOfDateError,
    SnapshotTemporarilyUnavailable,
    StorageError,
    UnavailableError,
)
from .rawnode import RawNode, Status
from .storage import MemoryStorage, Storage, bootstrap_snapshot
from .types import (
    NO_LEADER,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SoftState,
)

__all__ = [
    "NO_LEADER",
    "Bug",
    "CodecError",
    "CompactedError",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Config",
    "ConfigError",
    "Entry",
    "EntryType",
    "HardState",
    "MemoryStorage",
    "Message",
    "MessageType",
    "ConfChangePending",
    "ProposalDropped",
    "RaftError",
    "RawNode",
    "ReadState",
    "Ready",
    "Role",
    "Snapshot",
    "SnapshotOutOfDateError",
    "SnapshotTemporarilyUnavailable",
    "SoftState",
    "Status",
    "Storage",
    "StorageError",
    "UnavailableError",
    "bootstrap_snapshot",
    "decode_message",
    "encode_message",
]

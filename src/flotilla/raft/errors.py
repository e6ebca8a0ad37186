"""The raft core's exceptions. Conditions a caller must handle are exceptions; bugs are assertions."""


class RaftError(Exception):
    """Base of every error the raft core raises."""


class ProposalDropped(RaftError):
    """A proposal was not appended: no leader is known, a leadership transfer is under way, this
    member was removed, or a membership change is already pending. Retry after a leader is elected
    (watch ``SoftState``), or against the leader."""


class ConfChangePending(ProposalDropped):
    """A membership change was refused because an earlier one (or, on a new leader, its predecessors'
    entries) is not yet applied. It will be accepted once the apply loop catches up."""


class ConfigError(RaftError):
    """The raft ``Config`` is invalid; the message says which field and why."""


class StorageError(RaftError):
    """Base of the errors a ``Storage`` raises."""


class CompactedError(StorageError):
    """The requested index is at or below the storage's compaction point (it lives in a snapshot)."""


class UnavailableError(StorageError):
    """The requested index is beyond the last stored entry."""


class SnapshotOutOfDateError(StorageError):
    """The snapshot handed to storage is older than the one it already has."""


class SnapshotTemporarilyUnavailable(StorageError):
    """The storage cannot produce a snapshot right now; raft will retry on the next probe."""

"""The exception tree of the v3 keyspace. The member maps each to etcd's gRPC status and message."""

from __future__ import annotations


class MvccError(Exception):
    """Base of every keyspace error."""


class CompactedError(MvccError):
    """The requested revision is at or below the compaction point (etcd: ``ErrCompacted``,
    "mvcc: required revision has been compacted")."""

    def __init__(self, revision: int, compact_revision: int) -> None:
        super().__init__(
            f"mvcc: required revision {revision} has been compacted (compacted at {compact_revision})"
        )
        self.revision = revision
        self.compact_revision = compact_revision


class FutureRevisionError(MvccError):
    """The requested revision is beyond the current one (etcd: ``ErrFutureRev``,
    "mvcc: required revision is a future revision")."""

    def __init__(self, revision: int, current_revision: int) -> None:
        super().__init__(
            f"mvcc: required revision {revision} is a future revision (current is {current_revision})"
        )
        self.revision = revision
        self.current_revision = current_revision


class LeaseError(MvccError):
    """Base of lease errors."""


class LeaseNotFoundError(LeaseError):
    """No lease with that ID (etcd: "lease not found")."""

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"lease {lease_id:x} not found")
        self.lease_id = lease_id


class LeaseExistsError(LeaseError):
    """A grant asked for an ID that is already in use (etcd: "lease already exists")."""

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"lease {lease_id:x} already exists")
        self.lease_id = lease_id

"""The exception tree of the backend. Conditions a caller can meet, not bugs (those are assertions)."""

from __future__ import annotations


class BackendError(Exception):
    """Base of every backend error."""


class BackendClosedError(BackendError):
    """The backend was used after ``close()``."""

    def __init__(self, path: object) -> None:
        super().__init__(f"backend {path} is closed")
        self.path = path


class BackendCorruptError(BackendError):
    """The database file is not a database this backend can read, or is damaged. The member stops: its
    data must be restored from a snapshot (``etcdctl snapshot restore``) or the member re-added."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(
            f"backend {path} is unreadable ({reason}); restore it from a snapshot or remove the member's "
            "data directory and re-add the member"
        )
        self.path = path
        self.reason = reason

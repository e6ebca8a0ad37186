"""The WAL's exceptions: ``WalError`` is the base; ``WalCorruptError`` means the log cannot be trusted."""

from __future__ import annotations

from pathlib import Path


class WalError(Exception):
    """Base of every error the WAL raises: misuse (a directory that is not empty, an entry gap in a
    save), a snapshot mark the log never recorded, or a log that cannot serve the requested start."""


class WalCorruptError(WalError):
    """A record that is not a torn tail is bad: the member must not start from this log.

    ``path`` is the segment file, ``offset`` the byte offset of the bad record in it, ``reason`` what
    was wrong. The message tells the operator what to do.
    """

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        self.path = Path(path)
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"WAL corrupt: {self.path} at byte offset {offset}: {reason}. This member cannot start from a "
            "damaged log: restore its data directory from a snapshot/backup, or remove the member's data "
            "directory and re-add it to the cluster (etcdctl member remove, then member add) so it catches "
            "up from the leader."
        )

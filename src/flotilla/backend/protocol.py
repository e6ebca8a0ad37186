"""The contract between the member and its durable backend (etcd's bbolt): buckets of ordered byte keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from flotilla.backend.batch import WriteBatch


class Backend(Protocol):
    """A durable map ``bucket -> ordered {key bytes: value bytes}`` over one database file.

    Threads: one thread at a time calls ``write`` (the member's commit worker) while any other threads
    call ``get``, ``scan``, ``size_*`` and ``copy_to``; readers see whole batches only. ``defragment``
    and ``close`` wait for running calls and for unfinished scans, so a thread must finish or close its
    own scans before it calls them. Every call after ``close`` raises ``BackendClosedError``.
    """

    path: Path

    def write(self, batch: WriteBatch, *, sync: bool = False) -> None:
        """Apply every op of ``batch`` in one transaction: after a crash either all or none are there.
        ``sync=True``: durable when this returns. ``sync=False``: may be lost by a power failure (never by
        a kill of the process) but never leaves the database corrupt."""
        ...

    def get(self, bucket: str, key: bytes) -> bytes | None: ...

    def scan(
        self, bucket: str, start: bytes = b"", end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Items with ``start <= key < end`` (``end=None``: to the last key) in bytewise key order, all
        from one committed state even while another thread writes."""
        ...

    def size_bytes(self) -> int:
        """On-disk size of the database (etcd's ``dbSize``)."""
        ...

    def size_in_use_bytes(self) -> int:
        """Bytes of the database that hold data (etcd's ``dbSizeInUse``); the rest is free space."""
        ...

    def defragment(self) -> None:
        """Rewrite the database without its free space, so ``size_bytes`` shrinks toward in use."""
        ...

    def copy_to(self, target: Path) -> None:
        """Write a consistent, durable copy of the whole database to the new file ``target`` (which
        must not exist), readable by ``open_backend``."""
        ...

    def close(self) -> None:
        """Release the database; idempotent."""
        ...

"""The chosen backend: LMDB (see the package docstring for the measurements behind the choice)."""

from __future__ import annotations

from pathlib import Path

from flotilla.backend.lmdb_backend import LmdbBackend
from flotilla.backend.protocol import Backend


def open_backend(path: Path) -> Backend:
    """Open the database file ``path``, creating it (with every bucket of ``BUCKETS``) if missing.
    Raises ``BackendCorruptError`` if the file is not a readable database."""
    return LmdbBackend(Path(path))

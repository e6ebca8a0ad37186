"""Fixtures: every contract test runs against the real backend and its in-memory twin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flotilla.backend import Backend, MemoryBackend, open_backend

Opener = Callable[[Path], Backend]


@pytest.fixture(params=["lmdb", "memory"])
def opener(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Opens a backend at a path; the memory twins of one test share one simulated disk."""
    opened: list[Backend] = []
    files: dict[Path, object] = {}

    def open_(path: Path) -> Backend:
        backend = open_backend(path) if request.param == "lmdb" else MemoryBackend(path, files)
        opened.append(backend)
        return backend

    yield open_
    for backend in opened:
        backend.close()


@pytest.fixture
def backend(opener: Opener, tmp_path: Path) -> Backend:
    return opener(tmp_path / "member.db")

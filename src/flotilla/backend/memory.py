"""The in-memory twin of the backend, for unit tests: the same contract, no file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from sortedcontainers import SortedDict

from flotilla.backend.batch import BUCKETS, OpKind, WriteBatch
from flotilla.backend.errors import BackendClosedError

# A committed state: bucket -> SortedDict. Never mutated once published, so readers need no lock.
_State = dict[str, SortedDict]

# Rough per-record overhead of a B+tree leaf entry, so sizes move like a real file's.
_RECORD_OVERHEAD_BYTES = 16


class MemoryBackend:
    """``Backend`` in memory. ``files`` stands for the disk: it maps a path to the state last committed
    there, so twins that share it see each other's databases (reopen after ``close``, ``copy_to``).
    Every write is durable at once; a test that needs lost unsynced writes models them itself.

    ``size_bytes`` is the high-water mark of ``size_in_use_bytes`` since the last ``defragment``, as a
    file keeps the pages it freed.
    """

    def __init__(self, path: Path = Path("memory.db"), files: dict[Path, object] | None = None) -> None:
        self.path = Path(path)
        self._files: dict[Path, object] = {} if files is None else files
        state = self._files.get(self.path)
        self._state: _State = state if isinstance(state, dict) else {name: SortedDict() for name in BUCKETS}
        self._files[self.path] = self._state
        self._write_lock = threading.Lock()
        self._closed = False
        self._in_use_bytes = sum(_record_bytes(k, v) for d in self._state.values() for k, v in d.items())
        self._size_bytes = self._in_use_bytes

    def _live_state(self) -> _State:
        if self._closed:
            raise BackendClosedError(self.path)
        return self._state

    def write(self, batch: WriteBatch, *, sync: bool = False) -> None:
        with self._write_lock:
            old = self._live_state()
            # Copy-on-write per touched bucket, then publish all at once: readers see the old or the new.
            new = dict(old)
            in_use = self._in_use_bytes
            for kind, bucket, key, value in batch.ops:
                if new[bucket] is old[bucket]:
                    new[bucket] = old[bucket].copy()
                records = new[bucket]
                if kind is OpKind.PUT:
                    previous = records.get(key)
                    if previous is not None:
                        in_use -= _record_bytes(key, previous)
                    records[key] = value
                    in_use += _record_bytes(key, value)
                elif kind is OpKind.DELETE:
                    previous = records.pop(key, None)
                    if previous is not None:
                        in_use -= _record_bytes(key, previous)
                else:
                    for k in list(records.irange(key, value, inclusive=(True, False))):
                        in_use -= _record_bytes(k, records.pop(k))
            self._state = new
            self._files[self.path] = new
            self._in_use_bytes = in_use
            self._size_bytes = max(self._size_bytes, in_use)

    def get(self, bucket: str, key: bytes) -> bytes | None:
        return self._bucket(bucket).get(key)

    def scan(
        self, bucket: str, start: bytes = b"", end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        records = self._bucket(bucket)
        for key in records.irange(start, end, inclusive=(True, False)):
            yield key, records[key]

    def _bucket(self, bucket: str) -> SortedDict:
        state = self._live_state()
        if bucket not in state:
            raise ValueError(f"unknown bucket {bucket!r}; the buckets are {BUCKETS}")
        return state[bucket]

    def size_bytes(self) -> int:
        self._live_state()
        return self._size_bytes

    def size_in_use_bytes(self) -> int:
        self._live_state()
        return self._in_use_bytes

    def defragment(self) -> None:
        with self._write_lock:
            self._live_state()
            self._size_bytes = self._in_use_bytes

    def copy_to(self, target: Path) -> None:
        target = Path(target)
        if target in self._files:
            raise FileExistsError(f"{target} exists; copy_to writes a new file")
        # Published states are immutable, so sharing one is a consistent copy.
        self._files[target] = self._live_state()

    def close(self) -> None:
        self._closed = True

    def __repr__(self) -> str:
        return f"<MemoryBackend {self.path}{' closed' if self._closed else ''}>"


def _record_bytes(key: bytes, value: bytes) -> int:
    return len(key) + len(value) + _RECORD_OVERHEAD_BYTES

"""The LMDB backend: one LMDB file (bbolt's ancestor: a copy-on-write B+tree, readers never block the
writer), a named database per bucket."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import lmdb

from flotilla.backend._guard import SharedExclusiveGuard
from flotilla.backend.batch import BUCKETS, OpKind, WriteBatch
from flotilla.backend.errors import BackendClosedError, BackendCorruptError, BackendError

# LMDB maps the whole file; without MDB_WRITEMAP the file grows only with its data, so a large map
# costs address space, not disk. 64 GiB is 8 times etcd's largest supported quota (8 GiB).
MAP_SIZE_BYTES = 64 << 30

_META_PAGES = 2


class LmdbBackend:
    """``Backend`` over LMDB. See ``flotilla.backend.protocol.Backend`` for the contract.

    Crash safety: every commit writes and fdatasyncs its data pages before its meta page (LMDB's
    MDB_NOMETASYNC), so neither a kill nor a power failure can corrupt the file; a power failure may
    undo the last commits made with ``sync=False``. ``sync=True`` also flushes the meta page.
    ``fsync_data=False`` (MDB_NOSYNC) skips that fdatasync: still safe against a kill of the process, not
    against a power failure; for tests and benchmarks.
    """

    def __init__(self, path: Path, *, fsync_data: bool = True) -> None:
        self.path = Path(path)
        self._fsync_data = fsync_data
        self._guard = SharedExclusiveGuard()
        self._write_lock = threading.Lock()
        # A defragment copy that never replaced the file is garbage: the file itself is the truth.
        _remove_if_present(self._defrag_path())
        self._env: lmdb.Environment | None = None
        self._dbis: dict[str, object] = {}
        self._open()

    def _defrag_path(self) -> Path:
        return self.path.with_name(self.path.name + ".defrag")

    def _open(self) -> None:
        try:
            env = lmdb.open(
                str(self.path),
                subdir=False,
                map_size=MAP_SIZE_BYTES,
                max_dbs=len(BUCKETS),
                sync=self._fsync_data,
                metasync=False,
            )
        except (
            lmdb.InvalidError,
            lmdb.CorruptedError,
            lmdb.VersionMismatchError,
            lmdb.PageNotFoundError,
        ) as e:
            raise BackendCorruptError(self.path, f"{type(e).__name__}: {e}") from e
        try:
            with env.begin(write=True) as txn:
                self._dbis = {name: env.open_db(name.encode(), txn=txn, create=True) for name in BUCKETS}
        except lmdb.Error as e:
            env.close()
            raise BackendCorruptError(self.path, f"{type(e).__name__}: {e}") from e
        self._env = env

    def _live_env(self) -> lmdb.Environment:
        if self._env is None:
            raise BackendClosedError(self.path)
        return self._env

    def _dbi(self, bucket: str) -> object:
        try:
            return self._dbis[bucket]
        except KeyError:
            raise ValueError(f"unknown bucket {bucket!r}; the buckets are {BUCKETS}") from None

    def write(self, batch: WriteBatch, *, sync: bool = False) -> None:
        with self._guard.shared(), self._write_lock:
            env = self._live_env()
            dbis = self._dbis
            try:
                with env.begin(write=True) as txn:
                    for kind, bucket, key, value in batch.ops:
                        if kind is OpKind.PUT:
                            txn.put(key, value, db=dbis[bucket])
                        elif kind is OpKind.DELETE:
                            txn.delete(key, db=dbis[bucket])
                        else:
                            _delete_range(txn.cursor(db=dbis[bucket]), key, value)
            except lmdb.MapFullError as e:
                raise BackendError(f"backend {self.path} is full ({MAP_SIZE_BYTES} bytes mapped)") from e
            if sync:
                env.sync(True)

    def get(self, bucket: str, key: bytes) -> bytes | None:
        dbi = self._dbi(bucket)
        with self._guard.shared(), self._live_env().begin(db=dbi) as txn:
            return txn.get(key)

    def scan(
        self, bucket: str, start: bytes = b"", end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        dbi = self._dbi(bucket)
        # One read transaction for the whole scan: LMDB keeps its pages alive until it ends.
        with self._guard.shared(), self._live_env().begin(db=dbi) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(start):
                return
            if end is None:
                yield from cursor.iternext()
                return
            for item in cursor.iternext():
                if item[0] >= end:
                    return
                yield item

    def size_bytes(self) -> int:
        with self._guard.shared():
            self._live_env()
            return self.path.stat().st_size

    def size_in_use_bytes(self) -> int:
        with self._guard.shared():
            env = self._live_env()
            pages = _META_PAGES + _pages(env.stat())
            with env.begin() as txn:
                pages += sum(_pages(txn.stat(dbi)) for dbi in self._dbis.values())
            return pages * env.stat()["psize"]

    def defragment(self) -> None:
        # As bbolt's defrag: rewrite every record into a new file, then swap it in; nothing else runs
        # meanwhile. LMDB's own compacting copy would keep half-empty leaves (it copies pages, and a
        # compaction deletes every other revision), so the records are re-appended into full pages.
        with self._guard.exclusive():
            env = self._live_env()
            tmp = self._defrag_path()
            _remove_if_present(tmp)
            _write_packed_copy(env, self._dbis, tmp)
            env.close()
            self._env = None
            os.replace(tmp, self.path)
            _fsync_path(self.path.parent)
            self._open()

    def copy_to(self, target: Path) -> None:
        target = Path(target)
        if target.exists():
            raise FileExistsError(f"{target} exists; copy_to writes a new file")
        with self._guard.shared():
            # A compacting copy runs in its own read transaction: one consistent state, writers go on.
            self._live_env().copy(str(target), compact=True)
        _fsync_path(target)
        _fsync_path(target.parent)

    def close(self) -> None:
        with self._guard.exclusive():
            if self._env is not None:
                self._env.close()
                self._env = None

    def __repr__(self) -> str:
        return f"<LmdbBackend {self.path}{' closed' if self._env is None else ''}>"


def _write_packed_copy(env: lmdb.Environment, dbis: dict[str, object], target: Path) -> None:
    """Write every bucket of ``env`` into the new file ``target``, appended in key order, and fsync it."""
    # No lock file: nobody else knows the file until it replaces the database.
    copy = lmdb.open(
        str(target), subdir=False, map_size=MAP_SIZE_BYTES, max_dbs=len(BUCKETS), sync=False, lock=False
    )
    try:
        with env.begin() as source, copy.begin(write=True) as txn:
            for name, dbi in dbis.items():
                records = source.cursor(db=dbi).iternext()
                txn.cursor(db=copy.open_db(name.encode(), txn=txn, create=True)).putmulti(
                    records, append=True
                )
        copy.sync(True)
    finally:
        copy.close()


def _delete_range(cursor: lmdb.Cursor, start: bytes, end: bytes) -> None:
    if not cursor.set_range(start):
        return
    while True:
        key = cursor.key()
        # An empty key means the cursor ran off the end (keys are never empty).
        if not key or key >= end:
            return
        cursor.delete()


def _pages(stat: dict[str, int]) -> int:
    return stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_if_present(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

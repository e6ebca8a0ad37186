"""LMDB vs SQLite as the durable backend of the v3 keyspace, measured on the member's workload.

Both implement ``flotilla.backend.Backend``: LMDB is the package's own ``LmdbBackend`` (with and without
its per-commit fdatasync), SQLite a minimal variant defined here (WAL journal, a WITHOUT ROWID table per
bucket, ``synchronous=NORMAL``, ``FULL`` for ``sync=True`` commits). Records are etcd's: 17-byte revision
keys (8-byte main, "_", 8-byte sub), 200-byte values.

    .venv/bin/python bench/backend_lmdb_vs_sqlite.py              # ~30 s
    .venv/bin/python bench/backend_lmdb_vs_sqlite.py --records 20000 --sync-batches 5

Columns: (1) commits of 1000-put batches, sync=False and sync=True; (2) full ordered scan (the member's
restart); (3) random gets; (4) file size after the fill, after deleting every other record, after
defragment; (5) full scans while another thread commits batches: scan time alone and meanwhile, writer
ops/s alone and meanwhile, and whether every scan saw whole batches in order.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from flotilla.backend import BUCKETS, Backend, LmdbBackend, WriteBatch
from flotilla.backend.batch import OpKind

BATCH = 1000
VALUE = bytes(range(200))


class SqliteBackend:
    """``Backend`` over SQLite: a connection per thread (sqlite3 connections are not shared), WAL mode so
    that one writer and many readers run together, each SELECT reading one snapshot."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        db = self._db()
        db.execute("PRAGMA journal_mode=WAL")
        for name in BUCKETS:
            db.execute(
                f'CREATE TABLE IF NOT EXISTS "{name}" (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID'
            )

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def write(self, batch: WriteBatch, *, sync: bool = False) -> None:
        db = self._db()
        if sync:
            db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        try:
            for kind, bucket, key, value in batch.ops:
                if kind is OpKind.PUT:
                    db.execute(f'INSERT OR REPLACE INTO "{bucket}" VALUES (?, ?)', (key, value))
                elif kind is OpKind.DELETE:
                    db.execute(f'DELETE FROM "{bucket}" WHERE k = ?', (key,))
                else:
                    db.execute(f'DELETE FROM "{bucket}" WHERE k >= ? AND k < ?', (key, value))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            if sync:
                db.execute("PRAGMA synchronous=NORMAL")

    def get(self, bucket: str, key: bytes) -> bytes | None:
        row = self._db().execute(f'SELECT v FROM "{bucket}" WHERE k = ?', (key,)).fetchone()
        return None if row is None else row[0]

    def scan(
        self, bucket: str, start: bytes = b"", end: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        if end is None:
            cursor = self._db().execute(f'SELECT k, v FROM "{bucket}" WHERE k >= ? ORDER BY k', (start,))
        else:
            cursor = self._db().execute(
                f'SELECT k, v FROM "{bucket}" WHERE k >= ? AND k < ? ORDER BY k', (start, end)
            )
        yield from cursor

    def size_bytes(self) -> int:
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def size_in_use_bytes(self) -> int:
        db = self._db()
        pages = (
            db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
        )
        return pages * db.execute("PRAGMA page_size").fetchone()[0]

    def defragment(self) -> None:
        db = self._db()
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def copy_to(self, target: Path) -> None:
        self._db().execute("VACUUM INTO ?", (str(target),))

    def close(self) -> None:
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()


def revision_key(main: int, sub: int = 0) -> bytes:
    return main.to_bytes(8, "big") + b"_" + sub.to_bytes(8, "big")


def put_batch(first: int, count: int = BATCH) -> WriteBatch:
    batch = WriteBatch()
    for main in range(first, first + count):
        batch.put("key", revision_key(main), VALUE)
    return batch


def commit_rate(backend: Backend, first: int, batches: int, *, sync: bool) -> float:
    """Put ops/s over ``batches`` commits of BATCH puts each."""
    prepared = [put_batch(first + i * BATCH) for i in range(batches)]
    started = time.perf_counter()
    for batch in prepared:
        backend.write(batch, sync=sync)
    return batches * BATCH / (time.perf_counter() - started)


def best_seconds(run: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def full_scan_count(backend: Backend) -> int:
    count = 0
    for _ in backend.scan("key"):
        count += 1
    return count


def measure_basics(backend: Backend, records: int, sync_batches: int, rng: random.Random) -> dict[str, str]:
    row: dict[str, str] = {}
    row["put s=F"] = f"{commit_rate(backend, 1, records // BATCH, sync=False):,.0f}"
    row["put s=T"] = f"{commit_rate(backend, 10**9, sync_batches, sync=True):,.0f}"
    row["size MB"] = f"{backend.size_bytes() / 1e6:.1f}"
    # Remove the sync=True records so the scan and size figures are for exactly `records` records.
    cleanup = WriteBatch()
    cleanup.delete_range("key", revision_key(10**9), revision_key(2 * 10**9))
    backend.write(cleanup)
    assert full_scan_count(backend) == records
    row["scan s"] = f"{best_seconds(lambda: full_scan_count(backend)):.3f}"
    keys = [revision_key(rng.randrange(1, records + 1)) for _ in range(10_000)]
    seconds = best_seconds(lambda: [backend.get("key", k) for k in keys])
    row["get/s"] = f"{len(keys) / seconds:,.0f}"
    for first in range(1, records + 1, 2 * BATCH):
        batch = WriteBatch()
        for main in range(first, min(first + 2 * BATCH, records + 1), 2):
            batch.delete("key", revision_key(main))
        backend.write(batch)
    row["-half MB"] = f"{backend.size_bytes() / 1e6:.1f}"
    row["in use MB"] = f"{backend.size_in_use_bytes() / 1e6:.1f}"
    row["defrag s"] = f"{best_seconds(backend.defragment, repeat=1):.2f}"
    row["defrag MB"] = f"{backend.size_bytes() / 1e6:.1f}"
    return row


def measure_concurrency(backend: Backend, records: int, scans: int) -> dict[str, str]:
    """Full scans on this thread while another thread commits batches, against each alone."""
    backend.write(put_batch(1, records), sync=False)
    scan_alone = best_seconds(lambda: full_scan_count(backend))
    write_alone = commit_rate(backend, 10**9, 20, sync=False)

    stop = threading.Event()
    committed = [0]

    def writer() -> None:
        first = 2 * 10**9
        while not stop.is_set():
            backend.write(put_batch(first), sync=False)
            first += BATCH
            committed[0] += BATCH

    whole_batches = True
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.05)
        started = time.perf_counter()
        committed_before = committed[0]
        scan_times = []
        for _ in range(scans):
            scan_started = time.perf_counter()
            keys = [key for key, _ in backend.scan("key")]
            scan_times.append(time.perf_counter() - scan_started)
            whole_batches &= (len(keys) - records - 20 * BATCH) % BATCH == 0 and keys == sorted(keys)
        write_meanwhile = (committed[0] - committed_before) / (time.perf_counter() - started)
    finally:
        stop.set()
        thread.join()
    return {
        "scan alone s": f"{scan_alone:.3f}",
        "scan+writer s": f"{min(scan_times):.3f}",
        "put alone/s": f"{write_alone:,.0f}",
        "put+scans/s": f"{write_meanwhile:,.0f}",
        "consistent": "yes" if whole_batches else "NO",
    }


def print_table(title: str, rows: dict[str, dict[str, str]]) -> None:
    columns = list(next(iter(rows.values())))
    widths = [max(len(c), *(len(r[c]) for r in rows.values())) for c in columns]
    name_width = max(len(n) for n in rows)
    print(f"\n{title}")
    print(" " * name_width + " | " + " | ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for name, row in rows.items():
        cells = " | ".join(row[c].rjust(w) for c, w in zip(columns, widths, strict=True))
        print(f"{name.ljust(name_width)} | {cells}")


IMPLEMENTATIONS: dict[str, Callable[[Path], Backend]] = {
    "lmdb (fdatasync each commit)": LmdbBackend,
    "lmdb (nosync)": lambda path: LmdbBackend(path, fsync_data=False),
    "sqlite (WAL, NORMAL)": SqliteBackend,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--sync-batches", type=int, default=20)
    parser.add_argument("--scans", type=int, default=3)
    args = parser.parse_args()
    basics: dict[str, dict[str, str]] = {}
    concurrency: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="backend-bench-") as tmp:
        for name, make in IMPLEMENTATIONS.items():
            for part, rows in (("basics", basics), ("concurrency", concurrency)):
                path = Path(tmp) / f"{len(os.listdir(tmp))}.db"
                backend = make(path)
                try:
                    if part == "basics":
                        rows[name] = measure_basics(
                            backend, args.records, args.sync_batches, random.Random(1)
                        )
                    else:
                        rows[name] = measure_concurrency(backend, args.records, args.scans)
                finally:
                    backend.close()
    print(f"records: {args.records:,} x (17-byte key, 200-byte value); batches of {BATCH} puts")
    print_table(
        "(1) put ops/s, sync=False / sync=True; (2) full scan; (3) 10k random gets; (4) sizes", basics
    )
    print_table("(5) full scans while another thread commits batches of 1000 puts", concurrency)


if __name__ == "__main__":
    main()

"""WAL throughput: save() of 1, 64 and 1000 entries of 100 bytes with sync=True, and open() of 200,000
entries. Run: .venv/bin/python bench/wal_save.py [directory]  (the directory's filesystem is measured)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from flotilla.raft.types import Entry, EntryType, HardState
from flotilla.wal import WAL

DATA = b"x" * 100


def bench_save(root: Path, batch: int, seconds: float = 2.0) -> tuple[float, float]:
    """Saves per second and entries per second with one fsync per save."""
    wal = WAL.create(root / f"save{batch}", b"bench")
    index, saves = 1, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        entries = [Entry(1, i, EntryType.NORMAL, DATA) for i in range(index, index + batch)]
        index += batch
        wal.save(HardState(1, 1, index - 1), entries, sync=True)
        saves += 1
    elapsed = time.perf_counter() - start
    wal.close()
    return saves / elapsed, saves * batch / elapsed


def bench_open(root: Path, total: int = 200_000) -> float:
    with WAL.create(root / "open", b"bench") as wal:
        for first in range(1, total + 1, 1000):
            wal.save(
                HardState(1, 1, first),
                [Entry(1, i, EntryType.NORMAL, DATA) for i in range(first, first + 1000)],
                sync=False,
            )
    start = time.perf_counter()
    wal, contents = WAL.open(root / "open")
    elapsed = time.perf_counter() - start
    wal.close()
    assert len(contents.entries) == total
    return elapsed


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        root = Path(tmp)
        for batch in (1, 64, 1000):
            saves, entries = bench_save(root, batch)
            print(f"save({batch:4d} entries, sync): {saves:8.0f} saves/s {entries:10.0f} entries/s")
        print(f"open(200,000 entries): {bench_open(root):.3f} s")


if __name__ == "__main__":
    main()

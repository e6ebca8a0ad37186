"""What only the real file can show: crashes, corruption, the file's size, and defragment's exclusion."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from flotilla.backend import BackendCorruptError, LmdbBackend, WriteBatch, open_backend

# A child that writes batches of 500 puts plus a counter in "meta" forever (or defragments forever),
# printing the number of each batch once write() returned.
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from flotilla.backend import WriteBatch, open_backend

    backend = open_backend(Path(sys.argv[1]))
    n = int(backend.get("meta", b"batches") or 0)
    while True:
        if sys.argv[2] == "defragment":
            backend.defragment()
        else:
            n += 1
            batch = WriteBatch()
            for i in range(500):
                batch.put("key", n.to_bytes(8, "big") + i.to_bytes(8, "big"), bytes(200))
            batch.put("meta", b"batches", b"%d" % n)
            backend.write(batch, sync=n % 2 == 0)
        print(n, flush=True)
    """
)


def run_and_kill(path: Path, mode: str, lines: int) -> int:
    """Start the child, SIGKILL it after it printed ``lines`` lines; return the last number printed."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        last = 0
        for _ in range(lines):
            last = int(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    return last


def assert_whole_batches(path: Path, at_least: int) -> int:
    backend = open_backend(path)
    try:
        batches = int(backend.get("meta", b"batches") or 0)
        keys = [k for k, _ in backend.scan("key")]
    finally:
        backend.close()
    assert batches >= at_least
    assert len(keys) == batches * 500
    assert keys == sorted(keys)
    return batches


def test_kill_9_while_writing_and_while_defragmenting_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    path = tmp_path / "member.db"
    acknowledged = run_and_kill(path, "write", 40)
    batches = assert_whole_batches(path, acknowledged)
    run_and_kill(path, "defragment", 3)
    assert assert_whole_batches(path, batches) == batches
    assert not path.with_name("member.db.defrag").exists()


def test_a_file_that_is_not_a_database_stops_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "member.db"
    path.write_bytes(b"this is not an LMDB file" * 1000)
    with pytest.raises(BackendCorruptError, match="restore it from a snapshot"):
        open_backend(path)


def test_an_unfinished_defragment_copy_is_discarded_at_open(tmp_path: Path) -> None:
    path = tmp_path / "member.db"
    backend = open_backend(path)
    batch = WriteBatch()
    batch.put("key", b"a", b"1")
    backend.write(batch, sync=True)
    backend.close()
    leftover = tmp_path / "member.db.defrag"
    leftover.write_bytes(b"half a copy")
    backend = open_backend(path)
    assert backend.get("key", b"a") == b"1"
    assert not leftover.exists()
    backend.close()


def test_defragment_after_a_compaction_shrinks_the_file(tmp_path: Path) -> None:
    backend = LmdbBackend(tmp_path / "member.db", fsync_data=False)
    try:
        for first in range(0, 20_000, 1000):
            batch = WriteBatch()
            for i in range(first, first + 1000):
                batch.put("key", i.to_bytes(8, "big"), bytes(200))
            backend.write(batch)
        full = backend.size_bytes()
        batch = WriteBatch()
        for i in range(0, 20_000, 2):
            batch.delete("key", i.to_bytes(8, "big"))
        backend.write(batch)
        backend.defragment()
        assert backend.size_bytes() < 0.6 * full
        assert len(list(backend.scan("key"))) == 10_000
    finally:
        backend.close()


def test_defragment_waits_for_a_scan_in_another_thread(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "member.db")
    try:
        batch = WriteBatch()
        for i in range(10):
            batch.put("key", b"%d" % i, b"v")
        backend.write(batch)
        scan = backend.scan("key")
        assert next(scan) == (b"0", b"v")
        defragmenter = threading.Thread(target=backend.defragment)
        defragmenter.start()
        time.sleep(0.1)
        assert defragmenter.is_alive()
        # The scan that holds the database may still read, even with defragment waiting.
        assert backend.get("key", b"5") == b"v"
        assert len(list(scan)) == 9
        defragmenter.join(timeout=10)
        assert not defragmenter.is_alive()
        assert len(list(backend.scan("key"))) == 10
    finally:
        backend.close()


def test_defragment_with_an_unfinished_scan_in_the_same_thread_is_a_bug(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "member.db")
    batch = WriteBatch()
    batch.put("key", b"a", b"1")
    batch.put("key", b"b", b"1")
    backend.write(batch)
    scan = backend.scan("key")
    next(scan)
    with pytest.raises(AssertionError, match="finish or close it first"):
        backend.defragment()
    scan.close()
    backend.defragment()
    backend.close()


def test_lock_file_sits_beside_the_database(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "member.db")
    backend.close()
    assert sorted(os.listdir(tmp_path)) == ["member.db", "member.db-lock"]

"""The Backend contract (flotilla.backend.protocol), checked on LMDB and on the in-memory twin alike."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from flotilla.backend import BUCKETS, MAX_KEY_BYTES, Backend, BackendClosedError, WriteBatch
from flotilla.backend.batch import Op, OpKind

Opener = Callable[[Path], Backend]


def rev(main: int) -> bytes:
    """A revision key as the member writes it: 8-byte main, "_", 8-byte sub."""
    return main.to_bytes(8, "big") + b"_" + bytes(8)


def put_all(backend: Backend, items: dict[bytes, bytes], bucket: str = "key", *, sync: bool = False) -> None:
    batch = WriteBatch()
    for key, value in items.items():
        batch.put(bucket, key, value)
    backend.write(batch, sync=sync)


def test_every_bucket_exists_at_open_and_starts_empty(backend: Backend) -> None:
    for bucket in BUCKETS:
        assert list(backend.scan(bucket)) == []
        assert backend.get(bucket, b"k") is None
    with pytest.raises(ValueError, match="unknown bucket"):
        backend.get("nope", b"k")


def test_a_batch_applies_in_order_and_buckets_are_separate(backend: Backend) -> None:
    batch = WriteBatch()
    batch.put("key", b"a", b"1")
    batch.put("meta", b"a", b"meta")
    batch.put("key", b"a", b"2")  # a later put of the same key wins
    batch.put("key", b"b", b"3")
    batch.delete("key", b"b")
    batch.delete("key", b"missing")  # not an error
    assert len(batch) == 6
    backend.write(batch, sync=True)
    assert list(backend.scan("key")) == [(b"a", b"2")]
    assert backend.get("meta", b"a") == b"meta"
    assert list(backend.scan("lease")) == []


def test_a_batch_that_fails_part_way_leaves_nothing(backend: Backend) -> None:
    put_all(backend, {b"kept": b"1"})
    batch = WriteBatch()
    batch.put("key", b"x", b"1")
    batch.delete("key", b"kept")
    batch.ops.append(Op(OpKind.PUT, "no-such-bucket", b"y", b"2"))  # fails after two applied ops
    with pytest.raises(KeyError):
        backend.write(batch)
    assert list(backend.scan("key")) == [(b"kept", b"1")]


def test_scan_is_bytewise_ordered_within_bounds(backend: Backend) -> None:
    rng = random.Random(7)
    keys = [b"a", b"a\x00", b"ab", b"b", b"\x00", b"\xff", b"\xff\xff"]
    keys += [rng.randbytes(rng.randrange(1, 20)) for _ in range(300)]
    items = {key: key[::-1] for key in keys}
    shuffled = list(items.items())
    rng.shuffle(shuffled)
    put_all(backend, dict(shuffled))
    ordered = sorted(items.items())
    assert list(backend.scan("key")) == ordered
    for start, end in [
        (b"a", b"b"),
        (b"a\x00", b"ab"),
        (b"", b"a"),
        (b"b", None),
        (b"\xff", None),
        (b"c", b"c"),
    ]:
        expected = [(k, v) for k, v in ordered if k >= start and (end is None or k < end)]
        assert list(backend.scan("key", start, end)) == expected, (start, end)
    assert list(backend.scan("key", b"\xff\xff\x00")) == []


def test_delete_range_removes_exactly_start_to_end(backend: Backend) -> None:
    put_all(backend, {rev(i): b"v" for i in range(1, 101)})
    batch = WriteBatch()
    batch.delete_range("key", rev(10), rev(20))
    batch.delete_range("key", rev(95), rev(10_000))  # past the last key
    batch.delete_range("key", b"", rev(3))  # from the first key
    batch.delete_range("key", rev(50), rev(50))  # empty range
    backend.write(batch)
    left = [int.from_bytes(k[:8], "big") for k, _ in backend.scan("key")]
    assert left == [i for i in range(3, 95) if not 10 <= i < 20]


def test_batch_refuses_unknown_buckets_and_bad_keys() -> None:
    batch = WriteBatch()
    with pytest.raises(ValueError, match="unknown bucket"):
        batch.put("keys", b"a", b"1")
    with pytest.raises(ValueError, match="1 to 511 bytes"):
        batch.put("key", b"", b"1")
    with pytest.raises(ValueError, match="1 to 511 bytes"):
        batch.delete("key", bytes(MAX_KEY_BYTES + 1))
    batch.put("key", bytes(MAX_KEY_BYTES), b"")
    assert len(batch) == 1


def test_longest_key_and_empty_value_round_trip(backend: Backend) -> None:
    put_all(backend, {bytes(MAX_KEY_BYTES): b"", b"k": bytes(100_000)})
    assert backend.get("key", bytes(MAX_KEY_BYTES)) == b""
    assert backend.get("key", b"k") == bytes(100_000)


def test_reopen_keeps_committed_data(opener: Opener, tmp_path: Path) -> None:
    path = tmp_path / "member.db"
    first = opener(path)
    put_all(first, {rev(i): b"%d" % i for i in range(1, 1001)}, sync=True)
    put_all(first, {b"applied_index": (1000).to_bytes(8, "big")}, "meta")
    first.close()
    first.close()  # idempotent
    second = opener(path)
    assert [k for k, _ in second.scan("key")] == [rev(i) for i in range(1, 1001)]
    assert second.get("meta", b"applied_index") == (1000).to_bytes(8, "big")


def test_closed_backend_refuses_every_call(backend: Backend, tmp_path: Path) -> None:
    backend.close()
    calls = [
        lambda: backend.write(WriteBatch()),
        lambda: backend.get("key", b"a"),
        lambda: list(backend.scan("key")),
        backend.size_bytes,
        backend.size_in_use_bytes,
        backend.defragment,
        lambda: backend.copy_to(tmp_path / "copy.db"),
    ]
    for call in calls:
        with pytest.raises(BackendClosedError):
            call()


def test_copy_to_is_a_database_that_opens(opener: Opener, backend: Backend, tmp_path: Path) -> None:
    put_all(backend, {rev(i): b"x" * 200 for i in range(1, 2001)})
    put_all(backend, {b"m1": b"member"}, "members")
    target = tmp_path / "snapshot.db"
    backend.copy_to(target)
    put_all(backend, {rev(5000): b"after the copy"})
    copy = opener(target)
    assert [k for k, _ in copy.scan("key")] == [rev(i) for i in range(1, 2001)]
    assert copy.get("members", b"m1") == b"member"
    with pytest.raises(FileExistsError):
        backend.copy_to(target)


def test_defragment_keeps_data_and_never_grows(backend: Backend) -> None:
    put_all(backend, {rev(i): b"x" * 200 for i in range(1, 5001)})
    batch = WriteBatch()
    for i in range(1, 5001, 2):  # as a compaction does: every other revision
        batch.delete("key", rev(i))
    backend.write(batch)
    expected = list(backend.scan("key"))
    before = backend.size_bytes()
    assert before >= backend.size_in_use_bytes() > 0
    backend.defragment()
    assert list(backend.scan("key")) == expected
    assert backend.size_bytes() <= before
    assert backend.size_bytes() >= backend.size_in_use_bytes()
    put_all(backend, {rev(9999): b"writable after defragment"})
    assert backend.get("key", rev(9999)) == b"writable after defragment"


def test_readers_see_whole_batches_while_another_thread_writes(backend: Backend) -> None:
    """The member commits from a worker thread while the event loop reads: each scan and each get sees
    a committed state, whole batches only (every batch puts 100 keys and bumps one counter)."""
    batches = 60
    errors: list[str] = []

    def writer() -> None:
        for n in range(1, batches + 1):
            batch = WriteBatch()
            for i in range(100):
                batch.put("key", rev(n * 1000 + i), b"%d" % n)
            batch.put("meta", b"batches", b"%d" % n)
            backend.write(batch)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        scans = 0
        while thread.is_alive() or scans < 3:
            scans += 1
            items = list(backend.scan("key"))
            if len(items) % 100 or [k for k, _ in items] != sorted(k for k, _ in items):
                errors.append(f"scan saw {len(items)} keys")
            done = backend.get("meta", b"batches")
            seen = int(done) if done else 0
            if backend.get("key", rev(seen * 1000 + 99)) is None and seen:
                errors.append(f"meta says batch {seen} is in but its last key is not")
    finally:
        thread.join()
    assert not errors
    assert len(list(backend.scan("key"))) == batches * 100

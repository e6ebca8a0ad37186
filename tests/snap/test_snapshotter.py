"""Snapshot files: atomic saves, the newest intact one on load, broken ones set aside (etcd's snap)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flotilla.raft.types import ConfState, Snapshot
from flotilla.snap import SnapError, Snapshotter


def snapshot(index: int, term: int = 1, data: bytes = b"state") -> Snapshot:
    return Snapshot(index, term, ConfState(frozenset({1, 2, 3}), frozenset({9})), data + b"@%d" % index)


def files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    snapper = Snapshotter(tmp_path / "member" / "snap")  # created
    snapper.save(snapshot(10, 2, b"\x00" * 1000))
    assert files(tmp_path / "member" / "snap") == ["0000000000000002-000000000000000a.snap"]
    assert Snapshotter(tmp_path / "member" / "snap").load_newest() == snapshot(10, 2, b"\x00" * 1000)


def test_empty_membership_and_data(tmp_path: Path) -> None:
    snapper = Snapshotter(tmp_path)
    snapper.save(Snapshot(1, 1))
    assert snapper.load_newest() == Snapshot(1, 1)


def test_nothing_to_load(tmp_path: Path) -> None:
    assert Snapshotter(tmp_path).load_newest() is None


def test_an_empty_snapshot_is_not_written(tmp_path: Path) -> None:
    Snapshotter(tmp_path).save(Snapshot())
    assert files(tmp_path) == []


def test_load_newest_picks_the_highest_term_and_index(tmp_path: Path) -> None:
    snapper = Snapshotter(tmp_path)
    for index, term in [(5, 1), (20, 1), (21, 2), (300, 2)]:
        snapper.save(snapshot(index, term))
    assert snapper.load_newest() == snapshot(300, 2)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "rename"])
def test_a_broken_newest_file_is_set_aside_and_the_older_one_used(tmp_path: Path, damage: str) -> None:
    snapper = Snapshotter(tmp_path)
    snapper.save(snapshot(10))
    snapper.save(snapshot(20))
    newest = tmp_path / "0000000000000001-0000000000000014.snap"
    content = bytearray(newest.read_bytes())
    if damage == "flip":
        content[30] ^= 1
        newest.write_bytes(content)
    elif damage == "truncate":
        newest.write_bytes(content[:-1])
    elif damage == "empty":
        newest.write_bytes(b"")
    else:  # a file whose name does not match what it holds
        newest.unlink()
        (tmp_path / "0000000000000001-000000000000001e.snap").write_bytes(content)
        newest = tmp_path / "0000000000000001-000000000000001e.snap"
    assert snapper.load_newest() == snapshot(10)
    assert newest.with_name(newest.name + ".broken").exists()
    assert not newest.exists()


def test_all_broken_gives_none(tmp_path: Path) -> None:
    (tmp_path / "0000000000000001-0000000000000001.snap").write_bytes(b"garbage")
    assert Snapshotter(tmp_path).load_newest() is None
    assert files(tmp_path) == ["0000000000000001-0000000000000001.snap.broken"]


def test_available_passes_over_snapshots_the_wal_never_marked(tmp_path: Path) -> None:
    # The member writes the file before the WAL mark; a crash between leaves a file the log cannot use.
    snapper = Snapshotter(tmp_path)
    snapper.save(snapshot(10))
    snapper.save(snapshot(20))
    assert snapper.load_newest(available=[(0, 0), (10, 1)]) == snapshot(10)
    assert (tmp_path / "0000000000000001-0000000000000014.snap").exists()  # left alone, not broken
    assert snapper.load_newest(available=[(0, 0)]) is None


def test_purge_keeps_the_newest(tmp_path: Path) -> None:
    snapper = Snapshotter(tmp_path)
    for index in range(1, 9):
        snapper.save(snapshot(index))
    (tmp_path / "0000000000000000-0000000000000000.snap.broken").write_bytes(b"")
    snapper.purge(keep=3)
    assert files(tmp_path) == [
        "0000000000000000-0000000000000000.snap.broken",
        "0000000000000001-0000000000000006.snap",
        "0000000000000001-0000000000000007.snap",
        "0000000000000001-0000000000000008.snap",
    ]
    with pytest.raises(SnapError):
        snapper.purge(keep=0)


def test_a_crashed_save_leaves_no_trace_after_restart(tmp_path: Path) -> None:
    Snapshotter(tmp_path).save(snapshot(3))
    (tmp_path / "0000000000000001-0000000000000004.snap.tmp").write_bytes(b"half a snapshot")
    snapper = Snapshotter(tmp_path)
    assert files(tmp_path) == ["0000000000000001-0000000000000003.snap"]
    assert snapper.load_newest() == snapshot(3)


def test_save_errors_name_the_file(tmp_path: Path) -> None:
    snapper = Snapshotter(tmp_path / "snap")
    (tmp_path / "snap" / "0000000000000001-0000000000000005.snap.tmp").mkdir()  # in the way
    with pytest.raises(SnapError, match="0000000000000001-0000000000000005.snap"):
        snapper.save(snapshot(5))

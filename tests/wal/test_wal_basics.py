"""The WAL's contract for a healthy log: what save() writes, open() reads back (etcd's wal_test.go)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flotilla.raft.types import Entry, EntryType, HardState
from flotilla.wal import WAL, WalError, WalSnapshotMark


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term, index, EntryType.NORMAL, b"data-%d" % index) for index in range(first, last + 1)]


def segment_names(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".wal"))


def test_create_then_open_gives_back_metadata_entries_and_hard_state(tmp_path: Path) -> None:
    directory = tmp_path / "member" / "wal"
    with WAL.create(directory, b"member=1 cluster=7") as wal:
        wal.save(HardState(1, 1, 0), entries(1, 3))
        wal.save(HardState(2, 1, 3), [Entry(2, 4, EntryType.CONF_CHANGE, b"0 2 ")])
        assert wal.last_index == 4
    assert segment_names(directory) == ["0000000000000000-0000000000000000.wal"]
    assert not (tmp_path / "member" / "wal.tmp").exists()
    wal, contents = WAL.open(directory)
    with wal:
        assert contents.metadata == b"member=1 cluster=7"
        assert contents.hard_state == HardState(2, 1, 3)
        assert contents.snapshot == WalSnapshotMark(0, 0)
        assert contents.entries == entries(1, 3) + [Entry(2, 4, EntryType.CONF_CHANGE, b"0 2 ")]
        assert wal.last_index == 4


def test_exists_only_when_segments_are_there(tmp_path: Path) -> None:
    assert not WAL.exists(tmp_path / "wal")
    (tmp_path / "wal").mkdir()
    assert not WAL.exists(tmp_path / "wal")
    WAL.create(tmp_path / "wal", b"").close()
    assert WAL.exists(tmp_path / "wal")


def test_create_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "wal").mkdir()
    (tmp_path / "wal" / "stray").write_bytes(b"x")
    with pytest.raises(WalError, match="not empty"):
        WAL.create(tmp_path / "wal", b"")


def test_create_cleans_up_a_crashed_create(tmp_path: Path) -> None:
    (tmp_path / "wal.tmp").mkdir()
    (tmp_path / "wal.tmp" / "0000000000000000-0000000000000000.wal").write_bytes(b"half")
    WAL.create(tmp_path / "wal", b"m").close()
    assert not (tmp_path / "wal.tmp").exists()
    assert WAL.open(tmp_path / "wal")[1].metadata == b"m"


def test_open_of_a_directory_without_a_log_fails(tmp_path: Path) -> None:
    with pytest.raises(WalError, match="no WAL"):
        WAL.open(tmp_path / "wal")
    (tmp_path / "wal").mkdir()
    with pytest.raises(WalError, match="no WAL"):
        WAL.open(tmp_path / "wal")


def test_one_process_at_a_time(tmp_path: Path) -> None:
    wal = WAL.create(tmp_path / "wal", b"")
    with pytest.raises(WalError, match="in use"):
        WAL.open(tmp_path / "wal")
    wal.close()
    WAL.open(tmp_path / "wal")[0].close()


def test_a_later_save_overwrites_the_conflicting_suffix(tmp_path: Path) -> None:
    # Raft's Ready contract: entries may overwrite; drop every stored entry at or after entries[0].index.
    with WAL.create(tmp_path / "wal", b"") as wal:
        wal.save(HardState(1, 1, 0), entries(1, 4))
        wal.save(None, entries(5, 10))
        wal.save(HardState(2, 2, 4), entries(7, 8, term=2))
        assert wal.last_index == 8
        wal.save(None, entries(9, 9, term=2))
    wal, contents = WAL.open(tmp_path / "wal")
    wal.close()
    assert [(e.index, e.term) for e in contents.entries] == [(i, 1) for i in range(1, 7)] + [
        (7, 2),
        (8, 2),
        (9, 2),
    ]
    assert contents.hard_state == HardState(2, 2, 4)


def test_save_refuses_a_gap(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"") as wal:
        wal.save(None, entries(1, 3))
        with pytest.raises(WalError, match="gap"):
            wal.save(None, entries(5, 6))


def test_an_empty_save_writes_nothing(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"") as wal:
        path = tmp_path / "wal" / segment_names(tmp_path / "wal")[0]
        size = path.stat().st_size
        wal.save(None, [])
        assert path.stat().st_size == size


def test_reopen_and_append_again(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"") as wal:
        wal.save(HardState(1, 1, 1), entries(1, 2))
    for round_ in range(3):
        wal, contents = WAL.open(tmp_path / "wal")
        with wal:
            assert contents.entries == entries(1, 2 + 2 * round_)
            wal.save(HardState(1, 1, 3 + 2 * round_), entries(3 + 2 * round_, 4 + 2 * round_))
    wal, contents = WAL.open(tmp_path / "wal")
    wal.close()
    assert contents.entries == entries(1, 8)
    assert contents.hard_state == HardState(1, 1, 7)


def test_unsynced_saves_are_synced_by_close(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"") as wal:
        wal.save(None, entries(1, 5), sync=False)
    assert WAL.open(tmp_path / "wal")[1].entries == entries(1, 5)


def test_segments_are_cut_named_after_the_next_index(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"meta", segment_bytes=200) as wal:
        for index in range(1, 11):
            before = segment_names(tmp_path / "wal")
            wal.save(HardState(1, 1, index - 1), entries(index, index))
            after = segment_names(tmp_path / "wal")
            if after != before:  # a cut: the new segment is named after the index its first entry will have
                assert after[-1] == f"{len(before):016x}-{index + 1:016x}.wal"
    names = segment_names(tmp_path / "wal")
    assert len(names) > 2
    assert names[0] == "0000000000000000-0000000000000000.wal"
    assert [int(name[:16], 16) for name in names] == list(range(len(names)))
    wal, contents = WAL.open(tmp_path / "wal")
    wal.close()
    assert contents.entries == entries(1, 10)
    assert contents.hard_state == HardState(1, 1, 9)


def test_a_new_segment_repeats_metadata_and_hard_state(tmp_path: Path) -> None:
    # After older segments are released, a read that starts in a later one still finds both.
    with WAL.create(tmp_path / "wal", b"meta", segment_bytes=100) as wal:
        wal.save(HardState(3, 2, 4), entries(1, 4))  # big enough to cut right after
        assert len(segment_names(tmp_path / "wal")) == 2
        assert segment_names(tmp_path / "wal")[-1] == "0000000000000001-0000000000000005.wal"
        wal.save(None, entries(5, 6))
        wal.save_snapshot(WalSnapshotMark(5, 1))
        wal.release_before(5)
        assert segment_names(tmp_path / "wal")[0] == "0000000000000001-0000000000000005.wal"
    wal, contents = WAL.open(tmp_path / "wal", WalSnapshotMark(5, 1))
    wal.close()
    assert contents.metadata == b"meta"
    assert contents.hard_state == HardState(3, 2, 4)
    assert contents.entries == entries(6, 6)
    assert wal.last_index == 6


def test_snapshot_marks_choose_where_open_starts(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"m", segment_bytes=300) as wal:
        wal.save(HardState(1, 1, 0), entries(1, 20))
        wal.save(HardState(1, 1, 20), entries(21, 40))
        wal.save_snapshot(WalSnapshotMark(30, 1))
        wal.save(None, entries(41, 45))
    wal, contents = WAL.open(tmp_path / "wal", WalSnapshotMark(30, 1))
    with wal:
        assert contents.snapshot == (30, 1)
        assert contents.entries == entries(31, 45)
        assert contents.hard_state == HardState(1, 1, 20)
        assert wal.last_index == 45


def test_a_mark_never_saved_is_refused(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"") as wal:
        wal.save(HardState(1, 1, 5), entries(1, 10))
        wal.save_snapshot(WalSnapshotMark(5, 1))
    with pytest.raises(WalError, match="snapshot not found"):
        WAL.open(tmp_path / "wal", WalSnapshotMark(6, 1))
    with pytest.raises(WalError, match="mismatch"):
        WAL.open(tmp_path / "wal", WalSnapshotMark(5, 2))
    wal, contents = WAL.open(tmp_path / "wal", WalSnapshotMark(5, 1))
    wal.close()
    assert contents.entries == entries(6, 10)


def test_a_snapshot_from_the_leader_moves_the_log_past_its_end(tmp_path: Path) -> None:
    # A lagging follower installs the leader's snapshot at 100: its log continues at 101.
    with WAL.create(tmp_path / "wal", b"") as wal:
        wal.save(HardState(1, 1, 3), entries(1, 3))
        wal.save_snapshot(WalSnapshotMark(100, 3))
        assert wal.last_index == 100
        wal.save(HardState(3, 0, 100), entries(101, 102, term=3))
    wal, contents = WAL.open(tmp_path / "wal", WalSnapshotMark(100, 3))
    wal.close()
    assert contents.entries == entries(101, 102, term=3)
    # From an older start the entries in between are nowhere: the caller must use the newer snapshot.
    with pytest.raises(WalError, match="later snapshot"):
        WAL.open(tmp_path / "wal")


def test_bootstrap_mark_before_any_entry(tmp_path: Path) -> None:
    # flotilla.etcd's bootstrap: a snapshot at (1, 1), then the log from 2.
    with WAL.create(tmp_path / "wal", b"") as wal:
        wal.save_snapshot(WalSnapshotMark(1, 1))
        wal.save(HardState(1, 0, 1), entries(2, 3))
    wal, contents = WAL.open(tmp_path / "wal", WalSnapshotMark(1, 1))
    wal.close()
    assert contents.entries == entries(2, 3)
    assert WAL.snapshot_marks(tmp_path / "wal") == [(0, 0), (1, 1)]


def test_snapshot_marks_lists_those_at_or_below_the_commit(tmp_path: Path) -> None:
    with WAL.create(tmp_path / "wal", b"", segment_bytes=300) as wal:
        wal.save(HardState(1, 1, 10), entries(1, 20))
        wal.save_snapshot(WalSnapshotMark(10, 1))
        wal.save_snapshot(WalSnapshotMark(15, 1))  # written, but its hard state never made it
    assert WAL.snapshot_marks(tmp_path / "wal") == [(0, 0), (10, 1)]


def test_release_before_deletes_only_segments_wholly_before_the_index(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    with WAL.create(directory, b"", segment_bytes=250) as wal:
        for first in range(1, 60, 3):
            wal.save(HardState(1, 1, first + 2), entries(first, first + 2))
        names = segment_names(directory)
        firsts = [int(name[17:33], 16) for name in names]
        assert len(names) >= 4
        target = firsts[2] + 1  # inside the third segment
        wal.release_before(target)
        assert segment_names(directory) == names[2:]
        wal.save_snapshot(WalSnapshotMark(target, 1))
        wal.release_before(target)  # nothing more to release
        assert segment_names(directory)[0] == names[2]
        wal.release_before(10**9)  # never the last segment
        assert len(segment_names(directory)) == 1
        wal.save(None, entries(61, 61))
    with pytest.raises(WalError, match="snapshot not found"):
        WAL.open(directory, WalSnapshotMark(target, 1))  # the segment holding it is gone


def test_release_keeps_what_a_restart_from_the_snapshot_needs(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    with WAL.create(directory, b"", segment_bytes=250) as wal:
        for first in range(1, 60, 3):
            wal.save(HardState(1, 1, first + 2), entries(first, first + 2))
        wal.save_snapshot(WalSnapshotMark(33, 1))
        wal.release_before(33)
        wal.save(HardState(1, 1, 61), entries(61, 62))
    wal, contents = WAL.open(directory, WalSnapshotMark(33, 1))
    wal.close()
    assert contents.entries == entries(34, 62)
    assert contents.hard_state == HardState(1, 1, 61)

"""Torn tails are repaired, corruption anywhere else stops the member (DESIGN decision 6).

A crash during save() can leave any prefix of its one write() on disk; open() must then give back a
prefix of what was saved. Damage that a crash cannot cause must raise WalCorruptError naming the file
and the byte offset.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from flotilla.raft.types import Entry, EntryType, HardState
from flotilla.wal import WAL, WalCorruptError, WalError, WalSnapshotMark
from flotilla.wal.records import encode_entries

SAVES = [
    (HardState(1, 1, 0), [Entry(1, 1, EntryType.NORMAL, b"a" * 10)]),
    (HardState(1, 1, 1), [Entry(1, 2, EntryType.NORMAL, b"b" * 20), Entry(1, 3, EntryType.NORMAL, b"c")]),
    (None, [Entry(1, 4, EntryType.CONF_CHANGE, b"0 4 ")]),
    (HardState(2, 2, 4), [Entry(2, 5, EntryType.NORMAL, b""), Entry(2, 6, EntryType.NORMAL, b"f" * 30)]),
]


def write_saves(directory: Path, segment_bytes: int = 64 * 2**20) -> list[int]:
    """Write SAVES; return the size of the last segment after each one."""
    sizes = []
    with WAL.create(directory, b"meta", segment_bytes=segment_bytes) as wal:
        for hard_state, entries in SAVES:
            wal.save(hard_state, entries)
            sizes.append(last_segment(directory).stat().st_size)
    return sizes


def last_segment(directory: Path) -> Path:
    return directory / sorted(name for name in os.listdir(directory) if name.endswith(".wal"))[-1]


def all_records() -> list[object]:
    """Every record SAVES writes, in file order."""
    records: list[object] = []
    for hard_state, entries in SAVES:
        records += entries
        if hard_state is not None:
            records.append(hard_state)
    return records


def assert_prefix(contents_entries: list[Entry], hard_state: HardState | None) -> int:
    """The contents are what some prefix of all_records() leaves; returns that prefix's length."""
    records = all_records()
    for cut in range(len(records), -1, -1):
        prefix = records[:cut]
        entries = [r for r in prefix if isinstance(r, Entry)]
        states = [r for r in prefix if isinstance(r, HardState)]
        if entries == contents_entries and (states[-1] if states else None) == hard_state:
            return cut
    raise AssertionError(f"not a prefix: {contents_entries} {hard_state}")


def test_a_cut_at_every_byte_of_the_last_saves_leaves_a_prefix(tmp_path: Path) -> None:
    original = tmp_path / "original"
    sizes = write_saves(original)
    content = last_segment(original).read_bytes()
    name = last_segment(original).name
    seen = set()
    for size in range(sizes[1] - 1, len(content) + 1):
        directory = tmp_path / f"cut{size}"
        directory.mkdir()
        (directory / name).write_bytes(content[:size])
        wal, contents = WAL.open(directory)
        with wal:
            seen.add(assert_prefix(contents.entries, contents.hard_state))
            repaired = (directory / name).stat().st_size
            assert repaired <= size
            # The log is ready to append after the repair, and the append survives a reopen.
            next_index = wal.last_index + 1
            wal.save(HardState(3, 3, 0), [Entry(3, next_index, EntryType.NORMAL, b"after")])
        wal, reread = WAL.open(directory)
        wal.close()
        assert reread.entries == contents.entries + [Entry(3, next_index, EntryType.NORMAL, b"after")]
        assert reread.hard_state == HardState(3, 3, 0)
    # From the cut inside the second save's hard state (4 records kept) to everything (9).
    assert seen == set(range(4, len(all_records()) + 1))


def test_a_zero_filled_tail_is_torn(tmp_path: Path) -> None:
    sizes = write_saves(tmp_path / "wal")
    path = last_segment(tmp_path / "wal")
    content = path.read_bytes()
    # The filesystem kept the size of the last write but not its bytes.
    path.write_bytes(content[: sizes[2]] + bytes(len(content) - sizes[2]))
    wal, contents = WAL.open(tmp_path / "wal")
    wal.close()
    assert [e.index for e in contents.entries] == [1, 2, 3, 4]
    assert path.stat().st_size == sizes[2]


def test_zeros_after_the_last_record_are_torn(tmp_path: Path) -> None:
    write_saves(tmp_path / "wal")
    path = last_segment(tmp_path / "wal")
    with path.open("ab") as file:
        file.write(bytes(5000))  # preallocated space
    wal, contents = WAL.open(tmp_path / "wal")
    wal.close()
    assert [e.index for e in contents.entries] == [1, 2, 3, 4, 5, 6]


def test_a_half_written_record_before_zeros_is_torn(tmp_path: Path) -> None:
    # A record spanning sectors: power failed after its first sector reached the disk, not the next ones
    # (sector writes are atomic, so a torn record always has a whole zeroed sector-aligned piece).
    directory = tmp_path / "wal"
    with WAL.create(directory, b"meta") as wal:
        wal.save(HardState(1, 1, 0), [Entry(1, 1, EntryType.NORMAL, b"a")])
        start = last_segment(directory).stat().st_size
        wal.save(None, [Entry(1, 2, EntryType.NORMAL, b"x" * 2000)])
    path = last_segment(directory)
    content = bytearray(path.read_bytes())
    first_sector_end = (start // 512 + 1) * 512
    content[first_sector_end:] = bytes(len(content) - first_sector_end)
    path.write_bytes(content)
    wal, contents = WAL.open(directory)
    wal.close()
    assert [e.index for e in contents.entries] == [1]
    assert path.stat().st_size == start


def test_a_damaged_last_record_without_a_zeroed_sector_is_corruption(tmp_path: Path) -> None:
    # A bit flip in a record that was written whole (and possibly acknowledged): not a torn write, even
    # at the very end of the log; dropping it could drop an acknowledged write.
    sizes = write_saves(tmp_path / "wal")
    path = last_segment(tmp_path / "wal")
    content = bytearray(path.read_bytes())
    content[-3] ^= 0x01
    path.write_bytes(content)
    with pytest.raises(WalCorruptError):
        WAL.open(tmp_path / "wal")
    assert len(sizes) == len(SAVES)


def test_a_flipped_byte_in_an_earlier_record_is_corruption(tmp_path: Path) -> None:
    sizes = write_saves(tmp_path / "wal")
    path = last_segment(tmp_path / "wal")
    content = bytearray(path.read_bytes())
    offset = sizes[1] + 20  # inside the third save's entry record, with a fourth save after it
    content[offset] ^= 0x40
    path.write_bytes(content)
    with pytest.raises(WalCorruptError) as caught:
        WAL.open(tmp_path / "wal")
    error = caught.value
    assert error.path == path
    assert error.offset == sizes[1]
    message = str(error)
    assert str(path) in message and f"offset {sizes[1]}" in message
    assert "snapshot/backup" in message and "re-add" in message
    assert path.read_bytes() == content  # nothing was "repaired"


@pytest.mark.parametrize("where", ["length", "type", "crc"])
def test_each_header_field_is_checked(tmp_path: Path, where: str) -> None:
    sizes = write_saves(tmp_path / "wal")
    path = last_segment(tmp_path / "wal")
    content = bytearray(path.read_bytes())
    content[sizes[0] + {"crc": 0, "length": 4, "type": 8}[where]] ^= 0x01
    path.write_bytes(content)
    with pytest.raises(WalCorruptError) as caught:
        WAL.open(tmp_path / "wal")
    assert caught.value.offset == sizes[0]


def test_damage_in_a_segment_that_is_not_the_last_is_never_torn(tmp_path: Path) -> None:
    write_saves(tmp_path / "wal", segment_bytes=100)
    names = sorted(os.listdir(tmp_path / "wal"))
    assert len(names) >= 3
    first = tmp_path / "wal" / names[0]
    first.write_bytes(first.read_bytes()[:-3])  # a torn record, but the log went on after it
    with pytest.raises(WalCorruptError, match="not the last") as caught:
        WAL.open(tmp_path / "wal")
    assert caught.value.path == first


def test_a_missing_segment_is_corruption(tmp_path: Path) -> None:
    write_saves(tmp_path / "wal", segment_bytes=100)
    names = sorted(os.listdir(tmp_path / "wal"))
    os.remove(tmp_path / "wal" / names[1])
    with pytest.raises(WalCorruptError, match="missing") as caught:
        WAL.open(tmp_path / "wal")
    assert caught.value.path.name == names[2]


def test_a_gap_in_entry_indexes_is_corruption(tmp_path: Path) -> None:
    write_saves(tmp_path / "wal")
    path = last_segment(tmp_path / "wal")
    size = path.stat().st_size
    record = bytearray()
    encode_entries(record, [Entry(2, 8, EntryType.NORMAL, b"skips 7")])  # a well-formed record
    with path.open("ab") as file:
        file.write(record)
    with pytest.raises(WalCorruptError, match="entry 8 follows entry 6") as caught:
        WAL.open(tmp_path / "wal")
    assert (caught.value.path, caught.value.offset) == (path, size)


def test_an_unknown_record_type_is_corruption(tmp_path: Path) -> None:
    write_saves(tmp_path / "wal")
    path = last_segment(tmp_path / "wal")
    size = path.stat().st_size
    body = struct.pack("<IB", 3, 9) + b"xyz"
    with path.open("ab") as file:
        file.write(struct.pack("<I", zlib.crc32(body)) + body)
    with pytest.raises(WalCorruptError, match="unknown record type 9") as caught:
        WAL.open(tmp_path / "wal")
    assert caught.value.offset == size


def test_different_metadata_in_a_later_segment_is_corruption(tmp_path: Path) -> None:
    write_saves(tmp_path / "wal", segment_bytes=100)
    names = sorted(os.listdir(tmp_path / "wal"))
    other = tmp_path / "other"
    with WAL.create(other, b"another member") as wal:
        wal.save(None, [Entry(9, 1)])
    (tmp_path / "wal" / names[-1]).write_bytes(last_segment(other).read_bytes())
    with pytest.raises(WalCorruptError, match="metadata"):
        WAL.open(tmp_path / "wal")


def test_a_snapshot_read_starts_past_damage_it_does_not_need(tmp_path: Path) -> None:
    directory = tmp_path / "wal"
    with WAL.create(directory, b"m", segment_bytes=100) as wal:
        for index in range(1, 9):
            wal.save(HardState(1, 1, index), [Entry(1, index, EntryType.NORMAL, b"x" * 40)])
        wal.save_snapshot(WalSnapshotMark(7, 1))
    names = sorted(os.listdir(directory))
    first = directory / names[0]
    first.write_bytes(bytes(len(first.read_bytes())))
    wal, contents = WAL.open(directory, WalSnapshotMark(7, 1))
    wal.close()
    assert [e.index for e in contents.entries] == [8]


def test_after_a_failed_write_the_wal_refuses_more(tmp_path: Path) -> None:
    # fsyncgate: after a failed write or fsync the page cache cannot be trusted; only a restart is safe.
    wal = WAL.create(tmp_path / "wal", b"")
    wal.save(None, [Entry(1, 1)])
    os.close(wal._fd)  # the next write fails with EBADF
    with pytest.raises(OSError):
        wal.save(None, [Entry(1, 2)])
    wal._fd = os.open(last_segment(tmp_path / "wal"), os.O_WRONLY | os.O_APPEND)
    with pytest.raises(WalError, match="failed earlier"):
        wal.save(None, [Entry(1, 2)])
    wal.close()
    assert [e.index for e in WAL.open(tmp_path / "wal")[1].entries] == [1]

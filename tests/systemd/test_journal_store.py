"""The journal's storage: what a writer appends, readers in any process see whole and in order; segments
rotate, the oldest go when the total passes the bound, sequence numbers never repeat (as journald's)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flotilla.systemd.journal import Journal, JournalEntry, JournalReader, LineSplitter, journal_directory

SAFETY_NET_POLLS = 20_000  # a follower that sees nothing new for this many polls gives up (a hang guard)


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl"))


def test_appended_entries_read_back_in_order_with_every_field(tmp_path):
    journal = Journal(tmp_path, hostname="core-01", boot_id="b" * 32)
    written = [
        journal.append("m.service", 42, "bash", "Hello World", realtime_us=1_000),
        journal.append("m.service", 1, "systemd", "Stopped m.service.", 5, 2_000, transport="journal"),
        journal.append(None, None, "kernel", "no unit, no pid", realtime_us=3_000),
    ]
    journal.close()
    read = list(JournalReader(tmp_path).entries())
    assert read == written
    assert [entry.seqnum for entry in read] == [1, 2, 3]
    assert read[1] == JournalEntry(
        realtime_us=2_000, unit="m.service", pid=1, identifier="systemd", message="Stopped m.service.",
        priority=5, hostname="core-01", boot_id="b" * 32, seqnum=2, monotonic_us=read[1].monotonic_us,
        transport="journal", seqnum_id=journal.seqnum_id,
    )  # fmt: skip


def test_a_record_is_visible_to_a_reader_as_soon_as_append_returns(tmp_path):
    journal = Journal(tmp_path)
    reader = JournalReader(tmp_path)
    for number in range(5):
        journal.append("m.service", 7, "sh", f"line {number}")
        assert reader.tail(1)[0].message == f"line {number}"
    journal.close()


def test_messages_with_newlines_quotes_and_non_ascii_survive(tmp_path):
    message = 'multi\nline "quoted" \\ back\tslash — ünïcödé ✓'
    with Journal(tmp_path) as journal:
        journal.append("m.service", 1, "sh", message)
    assert [entry.message for entry in JournalReader(tmp_path).entries()] == [message]


def test_seqnums_continue_across_reopen_and_the_sequence_keeps_its_id(tmp_path):
    with Journal(tmp_path) as first:
        for _ in range(3):
            first.append("m.service", 1, "sh", "x")
    with Journal(tmp_path) as second:
        entry = second.append("m.service", 1, "sh", "y")
    assert entry.seqnum == 4
    assert second.seqnum_id == first.seqnum_id
    assert [entry.seqnum for entry in JournalReader(tmp_path).entries()] == [1, 2, 3, 4]


def test_segments_rotate_and_the_oldest_are_deleted_past_max_bytes(tmp_path):
    journal = Journal(tmp_path, max_bytes=4_000, segment_bytes=1_000)
    for number in range(200):
        journal.append("m.service", 1, "sh", f"message number {number:04d}")
    on_disk = sum(path.stat().st_size for path in _segments(tmp_path))
    assert on_disk == journal.total_bytes
    assert on_disk <= 4_000
    assert len(_segments(tmp_path)) > 1
    # Every segment but the newest is full (a record that would not fit starts the next one).
    assert all(1_000 - 200 < path.stat().st_size <= 1_000 for path in _segments(tmp_path)[:-1])
    survivors = [entry.seqnum for entry in JournalReader(tmp_path).entries()]
    assert survivors == list(range(survivors[0], 201)), "what remains is the newest entries, without gaps"
    assert survivors[0] > 1
    journal.close()
    with Journal(tmp_path, max_bytes=4_000, segment_bytes=1_000) as reopened:
        assert reopened.append("m.service", 1, "sh", "after restart").seqnum == 201


def test_segment_names_sort_by_age(tmp_path):
    with Journal(tmp_path, max_bytes=100_000, segment_bytes=300) as journal:
        for number in range(30):
            journal.append("m.service", 1, "sh", f"{number}")
    firsts = [int(path.stem, 16) for path in _segments(tmp_path)]
    assert firsts == sorted(firsts) and firsts[0] == 1
    for path, first in zip(_segments(tmp_path), firsts, strict=True):
        assert JournalReader(tmp_path)._read_segment(path, "")[0][0].seqnum == first


def test_a_reader_ignores_a_trailing_partial_record(tmp_path):
    with Journal(tmp_path) as journal:
        journal.append("m.service", 1, "sh", "complete")
    (segment,) = _segments(tmp_path)
    with open(segment, "ab") as torn:
        torn.write(b'{"i":2,"t":5,"m":0,"b":"","h":"","u":"m.service","p":1,"id":"sh","pr":6,"tr":"std')
    assert [entry.message for entry in JournalReader(tmp_path).entries()] == ["complete"]
    assert [entry.message for entry in JournalReader(tmp_path).tail(5)] == ["complete"]


def test_the_writer_cuts_a_torn_tail_on_open_so_the_next_record_stays_whole(tmp_path):
    with Journal(tmp_path) as journal:
        journal.append("m.service", 1, "sh", "before the crash")
    (segment,) = _segments(tmp_path)
    with open(segment, "ab") as torn:
        torn.write(b'{"i":2,"t":5,"m":0,"b":"","h":"","u":"m.ser')
    with Journal(tmp_path) as journal:
        journal.append("m.service", 1, "sh", "after the restart")
    entries = list(JournalReader(tmp_path).entries())
    assert [(entry.seqnum, entry.message) for entry in entries] == [
        (1, "before the crash"),
        (2, "after the restart"),
    ]


def test_a_damaged_line_is_skipped_and_the_rest_stays_readable(tmp_path):
    with Journal(tmp_path) as journal:
        journal.append("m.service", 1, "sh", "one")
    (segment,) = _segments(tmp_path)
    with open(segment, "ab") as damaged:
        damaged.write(b"not json at all\n")
    with Journal(tmp_path) as journal:
        journal.append("m.service", 1, "sh", "two")
    assert [entry.message for entry in JournalReader(tmp_path).entries()] == ["one", "two"]


def test_a_missing_directory_reads_as_an_empty_journal(tmp_path):
    reader = JournalReader(tmp_path / "nothing-here")
    assert list(reader.entries()) == []
    assert reader.tail(10) == []
    assert list(reader.follow(stop=lambda: True)) == []


@pytest.fixture
def mixed_journal(tmp_path):
    """Three units interleaved, one entry a second from t=1000 s: m.service, m2.service, redis.service."""
    with Journal(tmp_path, segment_bytes=700, max_bytes=10**6) as journal:
        for number in range(30):
            unit = ("m.service", "m2.service", "redis.service")[number % 3]
            journal.append(unit, 100 + number, "sh", f"{unit} {number}", realtime_us=(1000 + number) * 10**6)
    return JournalReader(tmp_path)


def test_unit_filters_take_exact_names_and_globs(mixed_journal):
    assert {entry.unit for entry in mixed_journal.entries(units=["m.service"])} == {"m.service"}
    assert {entry.unit for entry in mixed_journal.entries(units=["m*"])} == {"m.service", "m2.service"}
    both = list(mixed_journal.entries(units=["m.service", "redis.service"]))
    assert {entry.unit for entry in both} == {"m.service", "redis.service"} and len(both) == 20


def test_time_bounds_are_inclusive(mixed_journal):
    window = list(mixed_journal.entries(since_us=1005 * 10**6, until_us=1007 * 10**6))
    assert [entry.realtime_us // 10**6 for entry in window] == [1005, 1006, 1007]


def test_tail_gives_the_last_n_matching_entries_across_segments(mixed_journal):
    last = mixed_journal.tail(4, units=["m.service"])
    assert [entry.message for entry in last] == [f"m.service {n}" for n in (18, 21, 24, 27)]
    assert len(mixed_journal.tail(1000)) == 30
    assert mixed_journal.tail(0) == []


def test_entries_after_a_cursor_resume_where_the_cursor_points(mixed_journal):
    tenth = list(mixed_journal.entries())[9]
    resumed = list(mixed_journal.entries(after_cursor=tenth.cursor))
    assert [entry.seqnum for entry in resumed] == list(range(11, 31))
    with pytest.raises(ValueError, match="cursor"):
        list(mixed_journal.entries(after_cursor="garbage"))


def test_follow_yields_existing_then_new_entries_across_rotation_and_deletion(tmp_path):
    """Driven from the follower's idle callback, so the interleaving is exact: each time the follower has
    caught up, the next batch is written; one batch rotates past max_bytes and deletes segments."""
    journal = Journal(tmp_path, max_bytes=3_000, segment_bytes=1_000)
    for number in range(3):
        journal.append("m.service", 1, "sh", f"old {number}")
    batches = [
        [("m.service", "new a")],
        [("other.service", "not mine"), ("m.service", "new b")],
        [("m.service", f"bulk {number:03d}") for number in range(60)],  # rotates and deletes
        [("m.service", "after rotation")],
    ]

    def write_next_batch() -> bool:
        if not batches:
            return True
        for unit, message in batches.pop(0):
            journal.append(unit, 1, "sh", message)
        return False

    seen = list(JournalReader(tmp_path).follow(units=["m.service"], poll_s=0, stop=write_next_batch))
    journal.close()
    messages = [entry.message for entry in seen]
    assert messages[:5] == ["old 0", "old 1", "old 2", "new a", "new b"]
    assert messages[-1] == "after rotation"
    assert "not mine" not in messages
    seqnums = [entry.seqnum for entry in seen]
    assert seqnums == sorted(set(seqnums)), "no entry twice, none out of order"
    oldest_kept = next(JournalReader(tmp_path).entries()).seqnum
    assert oldest_kept > 6, "the segment being followed was deleted under the follower"


def test_follow_with_lines_starts_from_the_last_n(mixed_journal):
    calls = []
    seen = list(
        mixed_journal.follow(units=["redis.service"], lines=2, poll_s=0, stop=lambda: not calls.append(1))
    )
    assert [entry.message for entry in seen] == ["redis.service 26", "redis.service 29"]


def test_follow_with_zero_lines_shows_only_what_is_written_later(mixed_journal):
    batches = [["later"]]

    def write_next_batch() -> bool:
        if not batches:
            return True
        with Journal(mixed_journal.directory) as journal:
            for message in batches.pop():
                journal.append("m.service", 1, "sh", message)
        return False

    seen = list(mixed_journal.follow(lines=0, poll_s=0, stop=write_next_batch))
    assert [entry.message for entry in seen] == ["later"]


_WRITER = textwrap.dedent(
    """
    import sys
    from flotilla.systemd.journal import Journal
    journal = Journal(sys.argv[1], max_bytes=10**7, segment_bytes=2_000)
    for number in range(int(sys.argv[2])):
        journal.append("w.service", 9, "writer", f"line {number:05d}")
    journal.close()
    """
)


def test_follow_sees_every_line_another_process_writes_across_many_rotations(tmp_path):
    total = 2_000
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(total)])
    try:
        seen: list[JournalEntry] = []
        idle_polls = 0

        def stop() -> bool:
            nonlocal idle_polls
            idle_polls += 1
            return len(seen) >= total or (writer.poll() is not None and idle_polls > SAFETY_NET_POLLS)

        for entry in JournalReader(tmp_path).follow(poll_s=0.005, stop=stop):
            seen.append(entry)
            idle_polls = 0
        assert writer.wait(timeout=120) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert [entry.message for entry in seen] == [f"line {number:05d}" for number in range(total)]
    assert len(_segments(tmp_path)) > 10


def test_journal_directory_is_under_the_managers_root(tmp_path):
    assert journal_directory(tmp_path) == tmp_path / "var/log/journal"
    assert journal_directory("relative").is_absolute()


def test_size_limits_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="max_bytes"):
        Journal(tmp_path, max_bytes=0)


# ---- LineSplitter: a pipe's chunks into lines, as journald's stdout stream ----


def test_lines_split_across_chunks_are_joined():
    splitter = LineSplitter()
    assert splitter.feed(b"Hello Wo") == []
    assert splitter.feed(b"rld\nsecond\nthi") == ["Hello World", "second"]
    assert splitter.feed(b"rd\n") == ["third"]
    assert splitter.flush() == []


def test_the_last_unterminated_line_comes_out_at_eof():
    splitter = LineSplitter()
    assert splitter.feed(b"done\nno newline") == ["done"]
    assert splitter.flush() == ["no newline"]
    assert splitter.flush() == []


def test_empty_lines_are_entries_and_nul_ends_a_line():
    assert LineSplitter().feed(b"a\n\nb\0c\n") == ["a", "", "b", "c"]


def test_a_utf8_character_split_between_chunks_is_decoded_whole():
    data = "größe ✓\n".encode()
    splitter = LineSplitter()
    lines = []
    for index in range(len(data)):
        lines += splitter.feed(data[index : index + 1])
    assert lines == ["größe ✓"]


def test_invalid_utf8_becomes_the_replacement_character():
    assert LineSplitter().feed(b"bad \xff\xfe byte\n") == ["bad \ufffd\ufffd byte"]


def test_a_line_longer_than_max_line_is_split_like_journald_line_max():
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"0123456789abcdefghijXYZ\n") == ["0123456789", "abcdefghij", "XYZ"]


def test_an_overlong_line_without_newline_is_emitted_before_eof():
    splitter = LineSplitter(max_line=8)
    assert splitter.feed(b"x" * 20) == ["x" * 8, "x" * 8]
    assert splitter.flush() == ["xxxx"]


def test_splitting_never_cuts_a_multibyte_character():
    splitter = LineSplitter(max_line=8)
    lines = splitter.feed(("ab" + "✓" * 6 + "\n").encode())  # ✓ is 3 bytes
    assert "".join(lines) == "ab" + "✓" * 6
    assert all("\ufffd" not in line and len(line.encode()) <= 8 for line in lines)


def test_default_max_line_is_journalds_48k():
    splitter = LineSplitter()
    assert splitter.max_line == 48 * 1024
    assert [len(line) for line in splitter.feed(b"y" * (48 * 1024 + 5) + b"\n")] == [48 * 1024, 5]


def test_os_pipe_output_reaches_the_journal_line_by_line(tmp_path):
    read_fd, write_fd = os.pipe()
    child = subprocess.Popen(["sh", "-c", "printf 'one\\ntwo\\nthree'"], stdout=write_fd)
    os.close(write_fd)
    splitter = LineSplitter()
    with Journal(tmp_path) as journal:
        while chunk := os.read(read_fd, 3):
            for line in splitter.feed(chunk):
                journal.append("p.service", child.pid, "sh", line)
        for line in splitter.flush():
            journal.append("p.service", child.pid, "sh", line)
    os.close(read_fd)
    assert child.wait() == 0
    assert [entry.message for entry in JournalReader(tmp_path).entries()] == ["one", "two", "three"]

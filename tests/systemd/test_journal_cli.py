"""`flotilla journalctl` answers as journalctl does: -u (with .service implied and globs), -n, --since and
--until in systemd's time syntax, -o, "-- No entries --", exit 1 for bad values, and -f until a signal."""

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from click.testing import CliRunner

from flotilla.cli.journalctl import command, mangle_unit_name, parse_timestamp
from flotilla.systemd.journal import Journal, journal_directory

T0 = 1796515200  # 2026-12-06 00:00:00 UTC
LINE_WAIT_S = 60  # a hang guard for reading a follower's output, not a timing assertion


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def root(tmp_path):
    """m.service says "hello N" every minute from T0 (12 lines), redis.service twice, web@1 once."""
    with Journal(journal_directory(tmp_path), hostname="core-01", boot_id="b1" * 16) as journal:
        for minute in range(12):
            journal.append(
                "m.service", 100, "bash", f"hello {minute}", realtime_us=(T0 + 60 * minute) * 10**6
            )
        starting = "Starting redis.service..."
        journal.append(
            "redis.service", 1, "systemd", starting, realtime_us=(T0 + 30) * 10**6, transport="journal"
        )
        journal.append(
            "redis.service", 200, "redis", "Ready to accept connections", realtime_us=(T0 + 31) * 10**6
        )
        journal.append("web@1.service", 300, "web", "listening", realtime_us=(T0 + 32) * 10**6)
    return tmp_path


def run(root, *args, env=None):
    return CliRunner().invoke(command, ["--root", str(root), *args], env=env)


def messages(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [line.split(": ", 1)[1] for line in result.output.splitlines()]


def test_unit_without_suffix_means_service_and_n_gives_the_last_lines(root):
    result = run(root, "-u", "m", "-n", "3")
    assert result.output.splitlines() == [
        "Dec 06 00:09:00 core-01 bash[100]: hello 9",
        "Dec 06 00:10:00 core-01 bash[100]: hello 10",
        "Dec 06 00:11:00 core-01 bash[100]: hello 11",
    ]


def test_fleetctl_spelling_of_the_options(root):
    result = run(root, "--unit", "redis.service", "--no-pager", "-n", "1", "--output", "cat")
    assert result.output == "Ready to accept connections\n"


def test_n_alone_means_ten_and_plus_n_counts_from_the_head(root):
    assert len(messages(run(root, "-n", "--no-pager"))) == 10
    assert messages(run(root, "-u", "m", "-n", "+2")) == ["hello 0", "hello 1"]
    assert len(messages(run(root, "-n", "all"))) == 15


def test_without_n_everything_shows_in_time_order_of_writing(root):
    shown = messages(run(root))
    assert len(shown) == 15 and shown[0] == "hello 0"


def test_several_units_and_globs(root):
    assert set(messages(run(root, "-u", "redis", "-u", "web@1"))) == {
        "Starting redis.service...", "Ready to accept connections", "listening",
    }  # fmt: skip
    assert messages(run(root, "-u", "web@*")) == ["listening"]
    assert len(messages(run(root, "-u", "*.service"))) == 15


def test_since_and_until_take_systemd_timestamps(root):
    assert messages(run(root, "-u", "m", "--since", "2026-12-06 00:10:00")) == ["hello 10", "hello 11"]
    assert messages(run(root, "-u", "m", "-S", "2026-12-06 00:03", "-U", "2026-12-06 00:04:00")) == [
        "hello 3", "hello 4",
    ]  # fmt: skip
    assert len(messages(run(root, "-u", "m", "--since", "2026-12-06"))) == 12
    assert messages(run(root, "-u", "m", "--since", f"@{T0 + 660}")) == ["hello 11"]
    assert messages(run(root, "-u", "m", "--until", f"@{T0}")) == ["hello 0"]


def test_since_with_n_takes_the_last_n_after_since(root):
    assert messages(run(root, "-u", "m", "--since", "2026-12-06 00:05:00", "-n", "2")) == [
        "hello 10",
        "hello 11",
    ]


def test_no_matching_entries(root):
    result = run(root, "-u", "nothing")
    assert (result.exit_code, result.output) == (0, "-- No entries --\n")
    assert run(root, "-u", "nothing", "-q").output == ""
    # Output meant for programs gets entries only, as journalctl makes json and cat quiet.
    assert run(root, "-u", "nothing", "-o", "json").output == ""


def test_an_empty_or_missing_journal_has_no_entries(tmp_path):
    result = run(tmp_path / "never-started")
    assert (result.exit_code, result.output) == (0, "-- No entries --\n")


def test_json_output_is_one_object_per_line(root):
    result = run(root, "-u", "redis", "-o", "json")
    objects = [json.loads(line) for line in result.output.splitlines()]
    assert [obj["MESSAGE"] for obj in objects] == ["Starting redis.service...", "Ready to accept connections"]
    assert objects[0]["_TRANSPORT"] == "journal" and objects[0]["UNIT"] == "redis.service"
    assert objects[1]["_SYSTEMD_UNIT"] == "redis.service" and objects[1]["_PID"] == "200"
    assert objects[1]["__REALTIME_TIMESTAMP"] == str((T0 + 31) * 10**6)


def test_after_cursor_resumes_after_an_entry(root):
    first = json.loads(run(root, "-u", "m", "-n", "+1", "-o", "json").output)
    resumed = messages(run(root, "-u", "m", "-n", "+2", "--after-cursor", first["__CURSOR"]))
    assert resumed == ["hello 1", "hello 2"]


def test_reverse_shows_newest_first(root):
    assert messages(run(root, "-u", "m", "-n", "2", "-r")) == ["hello 11", "hello 10"]


def test_a_new_boot_is_marked_unless_quiet(root):
    with Journal(journal_directory(root), hostname="core-01", boot_id="b2" * 16) as journal:
        journal.append("m.service", 101, "bash", "after reboot", realtime_us=(T0 + 3600) * 10**6)
    lines = run(root, "-u", "m", "-n", "2").output.splitlines()
    assert lines[1] == f"-- Boot {'b2' * 16} --"
    assert len(run(root, "-u", "m", "-n", "2", "-q").output.splitlines()) == 2


def test_root_comes_from_the_environment(root):
    result = CliRunner().invoke(
        command, ["-u", "m", "-n", "1", "-o", "cat"], env={"FLOTILLA_SYSTEMD_ROOT": str(root)}
    )
    assert (result.exit_code, result.output) == (0, "hello 11\n")


def test_without_a_root_it_is_a_usage_error():
    result = CliRunner().invoke(command, [], env={"FLOTILLA_SYSTEMD_ROOT": None})
    assert result.exit_code == 2


@pytest.mark.parametrize("bad", ["bogus", "2026-13-01", "2026-02-30", "25:00", "5 fortnights ago", ""])
def test_a_bad_timestamp_exits_1_with_journalctls_message(root, bad):
    result = run(root, "--since", bad)
    assert result.exit_code == 1
    assert f"Failed to parse timestamp: {bad}" in result.output


def test_since_after_until_is_refused(root):
    result = run(root, "--since", "2026-12-06 01:00", "--until", "2026-12-06 00:00")
    assert result.exit_code == 1 and "--since= must be before --until=." in result.output


def test_unknown_output_mode_lists_the_valid_ones(root):
    result = run(root, "-o", "xml")
    assert result.exit_code == 1
    assert "Unknown output format 'xml'" in result.output and "json-pretty" in result.output


def test_bad_line_count_exits_1(root):
    result = run(root, "-n", "many")
    assert result.exit_code == 1 and "Failed to parse lines 'many'" in result.output


def test_unit_name_mangling():
    assert mangle_unit_name("m") == "m.service"
    assert mangle_unit_name("web@1") == "web@1.service"
    assert mangle_unit_name("sshd.socket") == "sshd.socket"
    assert mangle_unit_name("m*") == "m*"


NOW_US = (T0 + 12 * 3600 + 34 * 60 + 56) * 10**6  # 2026-12-06 12:34:56 UTC


@pytest.mark.parametrize(
    ("spec", "expected_s"),
    [
        ("now", T0 + 45296),
        ("today", T0),
        ("yesterday", T0 - 86400),
        ("tomorrow", T0 + 86400),
        ("-5min", T0 + 45296 - 300),
        ("+1h", T0 + 45296 + 3600),
        ("5 min ago", T0 + 45296 - 300),
        ("1h 30min ago", T0 + 45296 - 5400),
        ("2 days ago", T0 + 45296 - 2 * 86400),
        ("@1796515200", T0),
        ("2026-12-06 08:00:00", T0 + 8 * 3600),
        ("2026-12-06 08:00", T0 + 8 * 3600),
        ("2026-12-06T08:00:01", T0 + 8 * 3600 + 1),
        ("2026-12-06", T0),
        ("26-12-06 08:00", T0 + 8 * 3600),
        ("08:15", T0 + 8 * 3600 + 900),
        ("08:15:30", T0 + 8 * 3600 + 930),
        ("Sun 2026-12-06 08:00:00", T0 + 8 * 3600),
        ("2026-12-06 08:00:00 UTC", T0 + 8 * 3600),
    ],
)
def test_timestamps_as_systemd_parses_them(spec, expected_s):
    assert parse_timestamp(spec, now_us=NOW_US) == expected_s * 10**6


def test_timestamps_are_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    assert parse_timestamp("2026-12-06 05:30:00", now_us=NOW_US) == T0 * 10**6
    assert parse_timestamp("2026-12-06 00:00:00 UTC", now_us=NOW_US) == T0 * 10**6


def test_fractional_seconds_are_kept():
    assert parse_timestamp("2026-12-06 00:00:00.25", now_us=NOW_US) == T0 * 10**6 + 250_000


# ---- -f: a real process, stopped by a signal, as a person's Ctrl-C or fleetctl's kill would ----

_WRITER = textwrap.dedent(
    """
    import sys
    from flotilla.systemd.journal import Journal, journal_directory
    with Journal(journal_directory(sys.argv[1]), hostname="core-01", segment_bytes=400) as journal:
        for number in range(3):
            journal.append("other.service", 5, "other", f"noise {number}")
            journal.append("m.service", 100, "bash", f"new {number}")
    """
)


def _lines_of(process: subprocess.Popen) -> "queue.Queue[str]":
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_follow_shows_the_last_ten_then_new_lines_until_a_signal(root, stop_signal):
    cli = [sys.executable, "-c", "from flotilla.cli.journalctl import command; command()"]
    env = {**os.environ, "TZ": "UTC"}
    follower = subprocess.Popen(
        [*cli, "--root", str(root), "-f", "-u", "m", "-o", "cat"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        lines = _lines_of(follower)
        assert [lines.get(timeout=LINE_WAIT_S) for _ in range(10)] == [f"hello {n}" for n in range(2, 12)]
        subprocess.run([sys.executable, "-c", _WRITER, str(root)], check=True, env=env)
        assert [lines.get(timeout=LINE_WAIT_S) for _ in range(3)] == ["new 0", "new 1", "new 2"]
        follower.send_signal(stop_signal)
        assert follower.wait(timeout=LINE_WAIT_S) == 0
        assert lines.empty()
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_follow_of_an_empty_journal_shows_whatever_arrives(tmp_path):
    root = tmp_path
    cli = [sys.executable, "-c", "from flotilla.cli.journalctl import command; command()"]
    follower = subprocess.Popen([*cli, "--root", str(root), "--follow", "--unit", "m", "--output", "cat"],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        lines = _lines_of(follower)
        subprocess.run([sys.executable, "-c", _WRITER, str(root)], check=True)
        assert [lines.get(timeout=LINE_WAIT_S) for _ in range(3)] == ["new 0", "new 1", "new 2"]
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=LINE_WAIT_S) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()

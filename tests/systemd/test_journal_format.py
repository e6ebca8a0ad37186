"""Output formats as systemd's journalctl prints them (src/shared/logs-show.c): the short family, cat,
verbose and the JSON modes with journald's field names."""

import json
import time

import pytest

from flotilla.systemd.journal import OUTPUT_MODES, JournalEntry, format_entry

# 2026-12-07 00:40:01.000042 UTC
REALTIME_US = 1796604001 * 10**6 + 42
BOOT = "16541eef2f6649688851a997aa82165b"


@pytest.fixture(autouse=True)
def timezone(monkeypatch):
    """Times print in local time: pin it, then give the process its own zone back."""

    def use(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    use("UTC")
    yield use
    monkeypatch.undo()
    time.tzset()


def entry(**changes) -> JournalEntry:
    fields = dict(
        realtime_us=REALTIME_US, unit="m.service", pid=4242, identifier="bash", message="Hello World",
        hostname="core-01", boot_id=BOOT, seqnum=26, monotonic_us=123_456_789, seqnum_id="a" * 32,
    )  # fmt: skip
    fields.update(changes)
    return JournalEntry(**fields)


def test_short_is_syslog_style_with_host_identifier_and_pid():
    assert format_entry(entry(), "short") == "Dec 07 00:40:01 core-01 bash[4242]: Hello World\n"


def test_short_uses_local_time(timezone):
    timezone("IST-5:30")
    assert format_entry(entry(), "short").startswith("Dec 07 06:10:01 core-01")
    assert format_entry(entry(), "short-iso").startswith("2026-12-07T06:10:01+05:30 ")
    timezone("EST+5")
    assert format_entry(entry(), "short-iso").startswith("2026-12-06T19:40:01-05:00 ")


def test_short_without_pid_hostname_or_identifier():
    assert format_entry(entry(pid=None), "short") == "Dec 07 00:40:01 core-01 bash: Hello World\n"
    assert format_entry(entry(hostname=""), "short") == "Dec 07 00:40:01 bash[4242]: Hello World\n"
    assert (
        format_entry(entry(identifier=""), "short") == "Dec 07 00:40:01 core-01 unknown[4242]: Hello World\n"
    )
    assert format_entry(entry(), "short", show_hostname=False) == "Dec 07 00:40:01 bash[4242]: Hello World\n"


def test_short_indents_continuation_lines_under_the_message():
    text = format_entry(entry(message="first\nsecond"), "short")
    prefix = "Dec 07 00:40:01 core-01 bash[4242]: "
    assert text == f"{prefix}first\n{' ' * len(prefix)}second\n"


def test_short_strips_colour_expands_tabs_and_hides_other_control_characters():
    assert format_entry(entry(message="\x1b[1;31mred\x1b[0m\tdone"), "short").endswith(": red        done\n")
    assert format_entry(entry(message="bell\x07"), "short").endswith(": [5B blob data]\n")


def test_the_other_short_modes():
    assert (
        format_entry(entry(), "short-precise") == "Dec 07 00:40:01.000042 core-01 bash[4242]: Hello World\n"
    )
    assert format_entry(entry(), "short-iso") == "2026-12-07T00:40:01+00:00 core-01 bash[4242]: Hello World\n"
    assert (
        format_entry(entry(), "short-iso-precise")
        == "2026-12-07T00:40:01.000042+00:00 core-01 bash[4242]: Hello World\n"
    )
    assert (
        format_entry(entry(), "short-full") == "Mon 2026-12-07 00:40:01 UTC core-01 bash[4242]: Hello World\n"
    )
    assert format_entry(entry(), "short-unix") == "1796604001.000042 core-01 bash[4242]: Hello World\n"
    assert format_entry(entry(), "short-monotonic") == "[  123.456789] core-01 bash[4242]: Hello World\n"
    assert (
        format_entry(entry(), "with-unit")
        == "Mon 2026-12-07 00:40:01 UTC core-01 m.service[4242]: Hello World\n"
    )


def test_utc_overrides_the_local_zone(timezone):
    timezone("IST-5:30")
    assert format_entry(entry(), "short", utc=True).startswith("Dec 07 00:40:01 ")


def test_cat_is_the_message_alone():
    assert format_entry(entry(), "cat") == "Hello World\n"


def test_json_uses_journald_field_names_and_string_values():
    line = format_entry(entry(), "json")
    assert line.endswith("}\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "__CURSOR": entry().cursor,
        "__REALTIME_TIMESTAMP": str(REALTIME_US),
        "__MONOTONIC_TIMESTAMP": "123456789",
        "_BOOT_ID": BOOT,
        "_TRANSPORT": "stdout",
        "PRIORITY": "6",
        "SYSLOG_FACILITY": "3",
        "SYSLOG_IDENTIFIER": "bash",
        "_PID": "4242",
        "_HOSTNAME": "core-01",
        "_SYSTEMD_UNIT": "m.service",
        "MESSAGE": "Hello World",
    }
    # journalctl puts the entry's address first, in this order.
    assert list(json.loads(line))[:4] == [
        "__CURSOR",
        "__REALTIME_TIMESTAMP",
        "__MONOTONIC_TIMESTAMP",
        "_BOOT_ID",
    ]


def test_json_of_a_manager_message_files_the_unit_under_unit_with_the_journal_transport():
    fields = json.loads(format_entry(entry(transport="journal", identifier="systemd", pid=1), "json"))
    assert fields["_TRANSPORT"] == "journal"
    assert fields["UNIT"] == "m.service"
    assert "_SYSTEMD_UNIT" not in fields


def test_json_leaves_out_fields_an_entry_does_not_have():
    fields = json.loads(format_entry(entry(unit=None, pid=None, hostname=""), "json"))
    assert not {"_SYSTEMD_UNIT", "UNIT", "_PID", "_HOSTNAME"} & set(fields)


def test_json_shows_huge_fields_as_null_and_unprintable_ones_as_bytes():
    assert json.loads(format_entry(entry(message="x" * 5000), "json"))["MESSAGE"] is None
    assert json.loads(format_entry(entry(message="a\x01"), "json"))["MESSAGE"] == [97, 1]
    assert json.loads(format_entry(entry(message="ünï\n"), "json"))["MESSAGE"] == "ünï\n"


def test_json_pretty_is_the_same_object_tab_indented_with_spaced_colons():
    pretty = format_entry(entry(), "json-pretty")
    assert json.loads(pretty) == json.loads(format_entry(entry(), "json"))
    lines = pretty.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert lines[1] == f'\t"__CURSOR" : "{entry().cursor}",'
    assert lines[-2] == '\t"MESSAGE" : "Hello World"'


def test_json_sse_and_json_seq_framing():
    compact = format_entry(entry(), "json").rstrip("\n")
    assert format_entry(entry(), "json-sse") == f"data: {compact}\n\n"
    assert format_entry(entry(), "json-seq") == f"\x1e{compact}\n"


def test_verbose_shows_time_cursor_then_every_field():
    two_lines = entry(message="two\nlines")
    text = format_entry(two_lines, "verbose")
    assert text.splitlines() == [
        f"Mon 2026-12-07 00:40:01.000042 UTC [{two_lines.cursor}]",
        f"    _BOOT_ID={BOOT}",
        "    _TRANSPORT=stdout",
        "    PRIORITY=6",
        "    SYSLOG_FACILITY=3",
        "    SYSLOG_IDENTIFIER=bash",
        "    _PID=4242",
        "    _HOSTNAME=core-01",
        "    _SYSTEMD_UNIT=m.service",
        "    MESSAGE=two",
        "            lines",
    ]


def test_the_cursor_is_journald_shaped_and_names_the_position():
    cursor = entry().cursor
    fields = dict(part.split("=") for part in cursor.split(";"))
    assert list(fields) == ["s", "i", "b", "m", "t", "x"]
    assert fields["s"] == "a" * 32 and fields["b"] == BOOT
    assert (
        int(fields["i"], 16) == 26
        and int(fields["t"], 16) == REALTIME_US
        and int(fields["m"], 16) == 123_456_789
    )


def test_an_unknown_output_mode_names_the_valid_ones():
    with pytest.raises(ValueError) as raised:
        format_entry(entry(), "fancy")
    assert "Unknown output format 'fancy'" in str(raised.value)
    assert all(mode in str(raised.value) for mode in OUTPUT_MODES)
    with pytest.raises(ValueError):
        format_entry(entry(), "json-fancy")


@pytest.mark.parametrize("mode", OUTPUT_MODES)
def test_every_mode_ends_with_a_newline(mode):
    assert format_entry(entry(), mode).endswith("\n")

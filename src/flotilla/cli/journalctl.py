"""`flotilla journalctl`: show the embedded supervisor's journal, as systemd's journalctl shows its own.

Reads the journal files under ``--root`` directly, so it works whether or not the daemon runs. Exit codes as
journalctl: 0 (also after SIGINT/SIGTERM ends ``-f``), 1 for a bad value (timestamp, ``-n``, output mode),
2 for bad usage.
"""

from __future__ import annotations

import calendar
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import click

from flotilla.systemd.journal import (
    OUTPUT_MODES,
    JournalEntry,
    JournalReader,
    format_entry,
    journal_directory,
)

__all__ = ["command", "mangle_unit_name", "parse_timestamp"]

_UNIT_SUFFIXES = (
    ".service", ".socket", ".target", ".device", ".mount", ".automount", ".swap", ".timer", ".path",
    ".slice", ".scope",
)  # fmt: skip
_GLOB_CHARS = frozenset("*?[")
# Output modes whose readers expect nothing but entries: journalctl turns on --quiet for them.
_QUIET_MODES = frozenset({"json", "json-pretty", "json-sse", "json-seq", "cat"})
_DEFAULT_FOLLOW_LINES = 10


def mangle_unit_name(name: str) -> str:
    """``-u m`` means ``m.service``, as journalctl's unit_name_mangle: globs and suffixed names stay."""
    if _GLOB_CHARS & set(name) or name.endswith(_UNIT_SUFFIXES):
        return name
    return name + ".service"


# ---- time specifications, as systemd's parse_timestamp() and parse_sec() read them ----

_USEC_PER_SEC = 1_000_000
_TIMESPAN_UNITS = {
    "seconds": 1, "second": 1, "sec": 1, "s": 1,
    "minutes": 60, "minute": 60, "min": 60, "m": 60,
    "months": 2_629_800, "month": 2_629_800, "M": 2_629_800,  # systemd: 30.44 days
    "msec": 0.001, "ms": 0.001, "usec": 1e-6, "us": 1e-6, "µs": 1e-6,
    "hours": 3600, "hour": 3600, "hr": 3600, "h": 3600,
    "days": 86400, "day": 86400, "d": 86400,
    "weeks": 604800, "week": 604800, "w": 604800,
    "years": 31_557_600, "year": 31_557_600, "y": 31_557_600,  # 365.25 days
}  # fmt: skip
# Longest unit first, so "min" is not read as "m" followed by "in".
_TIMESPAN_TOKEN = re.compile(
    r"\s*(\d+(?:\.\d*)?|\.\d+)\s*("
    + "|".join(sorted(map(re.escape, _TIMESPAN_UNITS), key=len, reverse=True))
    + r")?"
)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DATE_TIME = re.compile(
    r"^(?:(?P<year>\d{2}|\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2}))?"
    r"(?:(?:^|[ T])(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<frac>\d{1,6}))?)?)?$"
)


def _parse_timespan_us(text: str) -> int:
    """``5min``, ``1h 30min``, ``2.5s``, a bare number (seconds) — in microseconds."""
    text = text.strip()
    if not text:
        raise ValueError("empty time span")
    position, total = 0, 0.0
    while position < len(text):
        match = _TIMESPAN_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"bad time span {text!r}")
        total += float(match.group(1)) * _TIMESPAN_UNITS[match.group(2) or "s"]
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return round(total * _USEC_PER_SEC)


def _midnight_us(now_us: int, days_offset: int) -> int:
    tm = time.localtime(now_us // _USEC_PER_SEC)
    midnight = time.mktime((tm.tm_year, tm.tm_mon, tm.tm_mday + days_offset, 0, 0, 0, 0, 0, -1))
    return int(midnight) * _USEC_PER_SEC


def _strip_weekday(text: str) -> str:
    word, _, rest = text.partition(" ")
    lowered = word.lower().rstrip(",")
    if rest and any(day == lowered or (len(lowered) >= 3 and day.startswith(lowered)) for day in _WEEKDAYS):
        return rest.strip()
    return text


def parse_timestamp(text: str, now_us: int | None = None) -> int:
    """A journalctl ``--since``/``--until`` value in µs since the epoch; local time unless it ends in UTC.

    Accepts ``YYYY-MM-DD HH:MM[:SS[.ffffff]]`` (also with ``T``), ``YYYY-MM-DD``, ``HH:MM[:SS]`` (today),
    ``now``, ``today``, ``yesterday``, ``tomorrow``, ``+5min``/``-5min``, ``5 min ago``, ``@EPOCH``.
    Raises ValueError for anything else.
    """
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    spec = text.strip()
    relative = {"now": None, "today": 0, "yesterday": -1, "tomorrow": 1}
    if spec in relative:
        days = relative[spec]
        return now_us if days is None else _midnight_us(now_us, days)
    if spec.startswith("+"):
        return now_us + _parse_timespan_us(spec[1:])
    if spec.startswith("-"):
        return now_us - _parse_timespan_us(spec[1:])
    if spec.endswith(" ago"):
        return now_us - _parse_timespan_us(spec[: -len(" ago")])
    if spec.endswith(" left"):
        return now_us + _parse_timespan_us(spec[: -len(" left")])
    if spec.startswith("@"):
        return _parse_timespan_us(spec[1:])
    return _parse_calendar_time(spec, now_us)


def _parse_calendar_time(spec: str, now_us: int) -> int:
    utc = spec.endswith(" UTC")
    if utc:
        spec = spec[: -len(" UTC")].strip()
    spec = _strip_weekday(spec)
    match = _DATE_TIME.match(spec)
    if not spec or match is None or not (match.group("year") or match.group("hour")):
        raise ValueError(f"unrecognised time {spec!r}")
    now = time.gmtime(now_us // _USEC_PER_SEC) if utc else time.localtime(now_us // _USEC_PER_SEC)
    if match.group("year"):
        year = int(match.group("year"))
        year += 2000 if len(match.group("year")) == 2 and year < 70 else 1900 if year < 100 else 0
        month, day = int(match.group("month")), int(match.group("day"))
    else:
        year, month, day = now.tm_year, now.tm_mon, now.tm_mday
    hour = int(match.group("hour") or 0)
    minute = int(match.group("minute") or 0)
    second = int(match.group("second") or 0)
    fraction_us = int((match.group("frac") or "0").ljust(6, "0"))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(f"time out of range {spec!r}")
    fields = (year, month, day, hour, minute, second, 0, 0, -1)
    seconds = calendar.timegm(fields) if utc else int(time.mktime(fields))
    # mktime normalises 2024-02-31 to March; systemd refuses such dates, so compare back.
    check = time.gmtime(seconds) if utc else time.localtime(seconds)
    if (check.tm_year, check.tm_mon, check.tm_mday) != (year, month, day):
        raise ValueError(f"no such date {spec!r}")
    return seconds * _USEC_PER_SEC + fraction_us


# ---- the command ----


def _parse_lines(value: str | None, follow: bool, no_tail: bool, since_set: bool) -> tuple[int | None, bool]:
    """(how many, from the head?) — None means all. journalctl: ``-n`` alone is 10, ``+N`` the first N."""
    if value is None:
        if follow and not no_tail and not since_set:
            return _DEFAULT_FOLLOW_LINES, False
        return None, False
    if value == "all":
        return None, False
    from_head = value.startswith("+")
    digits = value[1:] if from_head else value
    if not digits.isdigit():
        raise ValueError(value)
    return int(digits), from_head


class _StopOnSignal:
    """SIGINT/SIGTERM end ``-f`` cleanly (exit 0), as journalctl; handlers go in on the main thread only."""

    def __init__(self) -> None:
        self.stopped = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.stopped = True

    def __exit__(self, *_: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def __call__(self) -> bool:
        return self.stopped


def _emit(entries: Iterable[JournalEntry], output: str, quiet: bool, utc: bool, show_hostname: bool) -> int:
    shown, previous_boot = 0, None
    for entry in entries:
        if not quiet and previous_boot is not None and entry.boot_id != previous_boot:
            click.echo(f"-- Boot {entry.boot_id} --")
        previous_boot = entry.boot_id
        click.echo(format_entry(entry, output, utc=utc, show_hostname=show_hostname), nl=False)
        shown += 1
    return shown


def _select(
    reader: JournalReader, filters: dict, lines: int | None, from_head: bool, reverse: bool
) -> list[JournalEntry]:
    if lines is None:
        chosen = list(reader.entries(**filters))
    elif from_head:
        chosen = []
        for entry in reader.entries(**filters):
            if len(chosen) >= lines:
                break
            chosen.append(entry)
    else:
        chosen = reader.tail(lines, **filters)
    return list(reversed(chosen)) if reverse else chosen


def _fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(1)


@click.command("journalctl")
@click.option(
    "--root",
    envvar="FLOTILLA_SYSTEMD_ROOT",
    required=True,
    type=click.Path(path_type=Path),
    help="The supervisor's root directory (flotilla systemd --root); env FLOTILLA_SYSTEMD_ROOT.",
)
@click.option(
    "-u",
    "--unit",
    "units",
    multiple=True,
    metavar="UNIT",
    help="Show messages of this unit (a name without suffix means .service; globs allowed).",
)
@click.option(
    "-n",
    "--lines",
    "lines",
    is_flag=False,
    flag_value="10",
    default=None,
    metavar="[N|+N|all]",
    help="Show the last N entries (10 if N is left out), or the first N with +N.",
)
@click.option("-f", "--follow", is_flag=True, help="Show the last entries, then new ones as they come.")
@click.option("-S", "--since", default=None, metavar="TIME", help="Entries at or after TIME.")
@click.option("-U", "--until", default=None, metavar="TIME", help="Entries at or before TIME.")
@click.option("-o", "--output", default="short", metavar="MODE", help=f"One of: {', '.join(OUTPUT_MODES)}.")
@click.option("--after-cursor", default=None, metavar="CURSOR", help="Entries after this cursor.")
@click.option("--no-pager", is_flag=True, help="Accepted for compatibility; output is never paged.")
@click.option("-r", "--reverse", is_flag=True, help="Newest entries first.")
@click.option("-q", "--quiet", is_flag=True, help="No informational lines (-- No entries --, boot markers).")
@click.option("--no-tail", is_flag=True, help="With --follow, show all stored entries first.")
@click.option("--utc", is_flag=True, help="Show times in UTC.")
@click.option("--no-hostname", is_flag=True, help="Leave the hostname out of short output.")
def command(
    root: Path, units: tuple[str, ...], lines: str | None, follow: bool, since: str | None, until: str | None,
    output: str, after_cursor: str | None, no_pager: bool, reverse: bool, quiet: bool, no_tail: bool,
    utc: bool, no_hostname: bool,
) -> None:  # fmt: skip
    """Show the journal of the units run by `flotilla systemd --root DIR`."""
    if output not in OUTPUT_MODES:
        _fail(f"Unknown output format '{output}'. Valid formats: {', '.join(OUTPUT_MODES)}.")
    quiet = quiet or output in _QUIET_MODES
    times: dict[str, int | None] = {"since_us": None, "until_us": None}
    for key, value in (("since_us", since), ("until_us", until)):
        if value is not None:
            try:
                times[key] = parse_timestamp(value)
            except ValueError:
                _fail(f"Failed to parse timestamp: {value}")
    if (
        times["since_us"] is not None
        and times["until_us"] is not None
        and times["since_us"] > times["until_us"]
    ):
        _fail("--since= must be before --until=.")
    try:
        count, from_head = _parse_lines(lines, follow, no_tail, since is not None)
    except ValueError:
        _fail(f"Failed to parse lines '{lines}'")
    if follow and reverse:
        _fail("Please specify either --reverse or --follow, not both.")
    filters = {
        "units": tuple(mangle_unit_name(unit) for unit in units),
        "after_cursor": after_cursor,
        **times,
    }
    reader = JournalReader(journal_directory(root))
    show_hostname = not no_hostname
    try:
        if follow:
            with _StopOnSignal() as stop:
                stream = reader.follow(**filters, lines=count, stop=stop)
                _emit(stream, output, quiet, utc, show_hostname)
            return
        shown = _emit(_select(reader, filters, count, from_head, reverse), output, quiet, utc, show_hostname)
    except ValueError as error:  # a malformed --after-cursor
        _fail(f"Failed to seek to cursor: {error}")
    except BrokenPipeError:
        # `journalctl | head`: the reader went away, which is no error. Point stdout at /dev/null so the
        # interpreter's final flush does not report the broken pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return
    if shown == 0 and not quiet:
        click.echo("-- No entries --")

"""The journal: every line a unit's processes write, and the supervisor's own messages, kept on disk.

One process writes (the supervisor daemon, on its event-loop thread); any number of processes read the
files directly (``flotilla journalctl``), so the storage is chosen for readers without coordination:

* The journal directory holds segment files named ``<first seqnum, 16 hex digits>.jsonl``; sorting the
  names sorts the segments by age. Each segment is JSON lines, one record per line, appended with one
  ``write()`` per record on an ``O_APPEND`` descriptor. A reader takes a line only when its newline has
  arrived, so it never sees half a record; the writer cuts a torn tail (a crash mid-write) when it opens.
* A segment is never written again once a newer one exists (the writer closes the old descriptor before it
  creates the next file). Followers rely on this: after seeing a newer segment, one more read of the
  current one is complete.
* When the total size passes ``max_bytes`` the oldest segments are deleted, as journald's SystemMaxUse.
  Sequence numbers keep increasing across segments and restarts; ``seqnum-id`` names the sequence, like
  journald's seqnum ID, so a cursor from another journal is not mistaken for one of ours.

A record's keys (short, because every line carries them): ``i`` seqnum, ``t`` realtime µs, ``m`` monotonic
µs, ``b`` boot ID, ``h`` hostname, ``u`` unit, ``p`` PID, ``id`` SYSLOG_IDENTIFIER, ``pr`` priority,
``tr`` transport ("stdout" for a unit's output, "journal" for the manager's messages), ``msg`` message.

Output formats follow systemd's journalctl (src/shared/logs-show.c): see ``format_entry``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = [
    "OUTPUT_MODES",
    "Journal",
    "JournalEntry",
    "JournalReader",
    "LineSplitter",
    "format_entry",
    "journal_directory",
]

_SEGMENT_NAME = re.compile(r"^([0-9a-f]{16})\.jsonl$")
_SEQNUM_ID_FILE = "seqnum-id"
_LINE_MAX_BYTES = 48 * 1024  # journald's default LineMax=
# SYSLOG_FACILITY=3 (daemon) is what journald records for a service's stdout and for PID 1's messages.
_FACILITY_DAEMON = 3


def journal_directory(root: Path | str) -> Path:
    """Where the manager started with ``--root ROOT`` keeps its journal: ``ROOT/var/log/journal``, as
    journald's persistent storage (and flotilla.systemd.layout's ``journal_dir``)."""
    return Path(root).absolute() / "var/log/journal"


def _current_boot_id() -> str:
    # journald prints 128-bit IDs as 32 hex digits without dashes.
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
    except OSError:
        return uuid.uuid4().hex


@dataclass(frozen=True)
class JournalEntry:
    """One journal record. ``unit`` is None for lines that belong to no unit; ``pid`` None when unknown."""

    realtime_us: int
    unit: str | None
    pid: int | None
    identifier: str
    message: str
    priority: int = 6
    hostname: str = ""
    boot_id: str = ""
    seqnum: int = 0
    monotonic_us: int = 0
    transport: str = "stdout"
    seqnum_id: str = ""

    @property
    def cursor(self) -> str:
        """A position to resume after (``--after-cursor``), in journald's cursor syntax."""
        digest = hashlib.blake2b(self.message.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return (
            f"s={self.seqnum_id};i={self.seqnum:x};b={self.boot_id};m={self.monotonic_us:x};"
            f"t={self.realtime_us:x};x={int.from_bytes(digest, 'big'):x}"
        )


def _encode(entry: JournalEntry) -> bytes:
    record = {
        "i": entry.seqnum, "t": entry.realtime_us, "m": entry.monotonic_us, "b": entry.boot_id,
        "h": entry.hostname, "u": entry.unit, "p": entry.pid, "id": entry.identifier,
        "pr": entry.priority, "tr": entry.transport, "msg": entry.message,
    }  # fmt: skip
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8", "replace")


def _decode(line: bytes, seqnum_id: str) -> JournalEntry | None:
    try:
        record = json.loads(line)
        return JournalEntry(
            realtime_us=record["t"], unit=record["u"], pid=record["p"], identifier=record["id"],
            message=record["msg"], priority=record["pr"], hostname=record["h"], boot_id=record["b"],
            seqnum=record["i"], monotonic_us=record["m"], transport=record["tr"], seqnum_id=seqnum_id,
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        # Not a record this version wrote (or damaged on disk): skipping it keeps the rest readable.
        return None


def _list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(first seqnum, path) of every segment, oldest first; empty when the directory does not exist."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [
        (int(match.group(1), 16), directory / name) for name in names if (match := _SEGMENT_NAME.match(name))
    ]
    return sorted(found)


def _complete_lines(data: bytes) -> tuple[list[bytes], int]:
    """The newline-terminated lines of ``data`` and how many bytes they span (a torn tail is left out)."""
    end = data.rfind(b"\n") + 1
    if end == 0:
        return [], 0
    return data[: end - 1].split(b"\n"), end


class Journal:
    """The writer. Used by one process, from one thread; ``append`` returns once readers can see the record.

    No fsync: like journald's default, a machine crash may lose the last records, never corrupt earlier ones.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        max_bytes: int = 64 * 2**20,
        segment_bytes: int = 4 * 2**20,
        hostname: str | None = None,
        boot_id: str | None = None,
    ) -> None:
        if max_bytes < 2 or segment_bytes < 1:
            raise ValueError(
                f"journal size limits must be positive (max_bytes={max_bytes}, segment_bytes={segment_bytes})"
            )
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        # At least two segments fit under the bound, so deleting the oldest always frees room.
        self.segment_bytes = min(segment_bytes, max_bytes // 2)
        self.hostname = socket.gethostname() if hostname is None else hostname
        self.boot_id = _current_boot_id() if boot_id is None else boot_id
        self.directory.mkdir(parents=True, exist_ok=True)
        self.seqnum_id = self._load_or_create_seqnum_id()
        self._segments: list[tuple[int, Path, int]] = [
            (first, path, path.stat().st_size) for first, path in _list_segments(self.directory)
        ]
        self._next_seqnum = self._recover_last_seqnum() + 1
        self._fd: int | None = None
        self._closed = False
        # The daemon appends from its event loop only; the lock makes a stray thread (a test's, a helper's)
        # unable to interleave two records' seqnums or rotations.
        self._lock = threading.Lock()

    def _load_or_create_seqnum_id(self) -> str:
        path = self.directory / _SEQNUM_ID_FILE
        try:
            existing = path.read_text().strip()
        except FileNotFoundError:
            existing = ""
        if existing:
            return existing
        new_id = uuid.uuid4().hex
        scratch = path.with_suffix(".tmp")
        scratch.write_text(new_id + "\n")
        os.replace(scratch, path)  # readers see the whole ID or none
        return new_id

    def _recover_last_seqnum(self) -> int:
        """Cut a torn tail off the newest segment and return the last seqnum written (0 for none)."""
        for index in range(len(self._segments) - 1, -1, -1):
            first, path, _ = self._segments[index]
            data = path.read_bytes()
            lines, complete = _complete_lines(data)
            if complete != len(data) and index == len(self._segments) - 1:
                # A crash mid-write left a partial record; appending after it would glue two records.
                os.truncate(path, complete)
                self._segments[index] = (first, path, complete)
            for line in reversed(lines):
                entry = _decode(line, self.seqnum_id)
                if entry is not None:
                    return entry.seqnum
        # Every segment was empty: continue after the newest one's name so names stay in order.
        return self._segments[-1][0] - 1 if self._segments else 0

    @property
    def total_bytes(self) -> int:
        """Bytes the segments take now (what ``max_bytes`` bounds)."""
        return sum(size for _, _, size in self._segments)

    def append(
        self,
        unit: str | None,
        pid: int | None,
        identifier: str,
        message: str,
        priority: int = 6,
        realtime_us: int | None = None,
        *,
        transport: str = "stdout",
    ) -> JournalEntry:
        """Write one record; ``transport="journal"`` marks the manager's own messages about ``unit``."""
        if self._closed:
            raise RuntimeError(f"journal {self.directory} is closed; append() after close() is a bug")
        entry = JournalEntry(
            realtime_us=time.time_ns() // 1000 if realtime_us is None else realtime_us,
            unit=unit, pid=pid, identifier=identifier, message=message, priority=priority,
            hostname=self.hostname, boot_id=self.boot_id,
            monotonic_us=time.monotonic_ns() // 1000, transport=transport, seqnum_id=self.seqnum_id,
        )  # fmt: skip
        with self._lock:
            return self._append_locked(entry)

    def _append_locked(self, entry: JournalEntry) -> JournalEntry:
        entry = replace(entry, seqnum=self._next_seqnum)
        record = _encode(entry)
        if self._fd is None or (
            self._segments[-1][2] > 0 and self._segments[-1][2] + len(record) > self.segment_bytes
        ):
            self._open_segment(entry.seqnum)
        self._write_all(record)
        first, path, size = self._segments[-1]
        self._segments[-1] = (first, path, size + len(record))
        self._next_seqnum += 1
        self._enforce_size_bound()
        return entry

    def _open_segment(self, first_seqnum: int) -> None:
        reuse = self._fd is None and self._segments and self._segments[-1][2] < self.segment_bytes
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if reuse:
            path = self._segments[-1][1]  # keep filling the newest segment after a restart
        else:
            path = self.directory / f"{first_seqnum:016x}.jsonl"
            self._segments.append((first_seqnum, path, 0))
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _enforce_size_bound(self) -> None:
        total = self.total_bytes
        while total > self.max_bytes and len(self._segments) > 1:
            _, path, size = self._segments.pop(0)
            path.unlink(missing_ok=True)
            total -= size

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._closed = True

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class LineSplitter:
    """Turns the chunks a pipe delivers into lines, as journald's stdout stream does.

    A line ends at ``\\n`` (or NUL); one longer than ``max_line`` bytes is split into pieces of at most
    ``max_line`` bytes, cut between UTF-8 characters; bytes that are not UTF-8 become U+FFFD.
    """

    def __init__(self, max_line: int = _LINE_MAX_BYTES) -> None:
        if max_line < 4:
            raise ValueError(f"max_line must be at least 4 bytes (one UTF-8 character), not {max_line}")
        self.max_line = max_line
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self._pending += data.replace(b"\0", b"\n")
        lines: list[str] = []
        while True:
            newline = self._pending.find(b"\n")
            if newline == -1:
                break
            line = bytes(self._pending[:newline])
            del self._pending[: newline + 1]
            lines.extend(self._split_long(line))
        # An unterminated line that is already too long is emitted now, so memory stays bounded.
        while len(self._pending) > self.max_line:
            cut = self._cut_point(self._pending)
            lines.append(self._pending[:cut].decode("utf-8", "replace"))
            del self._pending[:cut]
        return lines

    def flush(self) -> list[str]:
        """The last unterminated line, at EOF (nothing when the stream ended with a newline)."""
        if not self._pending:
            return []
        rest = bytes(self._pending)
        self._pending.clear()
        return self._split_long(rest)

    def _split_long(self, line: bytes) -> list[str]:
        pieces: list[str] = []
        while len(line) > self.max_line:
            cut = self._cut_point(line)
            pieces.append(line[:cut].decode("utf-8", "replace"))
            line = line[cut:]
        pieces.append(line.decode("utf-8", "replace"))
        return pieces

    def _cut_point(self, data: bytes | bytearray) -> int:
        cut = self.max_line
        # Step back over UTF-8 continuation bytes (10xxxxxx) so a character is not cut in two.
        for back in range(3):
            if cut - back > 0 and data[cut - back] & 0xC0 != 0x80:
                return cut - back
        return cut


@dataclass(frozen=True)
class _Filter:
    units: tuple[str, ...] = ()
    since_us: int | None = None
    until_us: int | None = None
    after_seqnum: int = 0
    after_realtime_us: int | None = None

    def matches(self, entry: JournalEntry) -> bool:
        if entry.seqnum <= self.after_seqnum:
            return False
        if self.after_realtime_us is not None and entry.realtime_us <= self.after_realtime_us:
            return False
        if self.since_us is not None and entry.realtime_us < self.since_us:
            return False
        if self.until_us is not None and entry.realtime_us > self.until_us:
            return False
        if self.units:
            if entry.unit is None:
                return False
            return any(fnmatch.fnmatchcase(entry.unit, pattern) for pattern in self.units)
        return True


def _parse_cursor(cursor: str) -> dict[str, str]:
    fields = dict(part.split("=", 1) for part in cursor.split(";") if "=" in part)
    if "i" not in fields and "t" not in fields:
        raise ValueError(
            f"cursor {cursor!r} has neither i= (seqnum) nor t= (time); pass a cursor journalctl printed"
        )
    return fields


class JournalReader:
    """Reads a journal directory directly; needs no daemon, takes no locks, works while the writer appends."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def _seqnum_id(self) -> str:
        try:
            return (self.directory / _SEQNUM_ID_FILE).read_text().strip()
        except FileNotFoundError:
            return ""

    def _filter(
        self,
        units: Sequence[str] = (),
        since_us: int | None = None,
        until_us: int | None = None,
        after_cursor: str | None = None,
    ) -> _Filter:
        after_seqnum, after_realtime = 0, None
        if after_cursor:
            fields = _parse_cursor(after_cursor)
            same_sequence = fields.get("s", "") in ("", self._seqnum_id())
            if same_sequence and "i" in fields:
                after_seqnum = int(fields["i"], 16)
            elif "t" in fields:
                # A cursor of another journal: its time is the only position that still means something.
                after_realtime = int(fields["t"], 16)
        return _Filter(tuple(units), since_us, until_us, after_seqnum, after_realtime)

    def _read_segment(self, path: Path, seqnum_id: str, offset: int = 0) -> tuple[list[JournalEntry], int]:
        """Complete records from ``offset`` and the bytes consumed; ([], 0) if the segment was deleted."""
        try:
            with open(path, "rb") as segment:
                segment.seek(offset)
                data = segment.read()
        except FileNotFoundError:
            return [], 0
        lines, consumed = _complete_lines(data)
        entries = [entry for line in lines if (entry := _decode(line, seqnum_id)) is not None]
        return entries, consumed

    def entries(
        self,
        units: Sequence[str] = (),
        since_us: int | None = None,
        until_us: int | None = None,
        after_cursor: str | None = None,
    ) -> Iterator[JournalEntry]:
        """Matching entries, oldest first. ``units`` are exact names or globs (``*``, ``?``, ``[...]``)."""
        matching = self._filter(units, since_us, until_us, after_cursor)
        seqnum_id = self._seqnum_id()
        for _, path in _list_segments(self.directory):
            entries, _ = self._read_segment(path, seqnum_id)
            yield from (entry for entry in entries if matching.matches(entry))

    def tail(
        self,
        n: int,
        units: Sequence[str] = (),
        since_us: int | None = None,
        until_us: int | None = None,
        after_cursor: str | None = None,
    ) -> list[JournalEntry]:
        """The last ``n`` matching entries, oldest first; reads segments newest first and stops early."""
        found, _ = self._tail_and_high_seqnum(n, self._filter(units, since_us, until_us, after_cursor))
        return found

    def _tail_and_high_seqnum(self, n: int | None, matching: _Filter) -> tuple[list[JournalEntry], int]:
        """The last ``n`` (all, for None) matching entries, and the highest seqnum in the journal."""
        seqnum_id = self._seqnum_id()
        chunks: list[list[JournalEntry]] = []
        count, high = 0, 0
        for _, path in reversed(_list_segments(self.directory)):
            entries, _ = self._read_segment(path, seqnum_id)
            if entries:
                high = max(high, entries[-1].seqnum)
            chosen = [entry for entry in entries if matching.matches(entry)]
            chunks.append(chosen)
            count += len(chosen)
            # Stop once enough are found, but not before the newest record is known (a follower starts there).
            if n is not None and count >= n and high:
                break
        found = [entry for chunk in reversed(chunks) for entry in chunk]
        if n is not None:
            found = found[len(found) - n :] if n > 0 else []
        return found, high

    def follow(
        self,
        units: Sequence[str] = (),
        since_us: int | None = None,
        until_us: int | None = None,
        after_cursor: str | None = None,
        *,
        lines: int | None = None,
        poll_s: float = 0.2,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[JournalEntry]:
        """Existing matching entries (the last ``lines`` of them, or all), then new ones as they are written.

        Polls every ``poll_s`` seconds while idle and returns when ``stop()`` is true. Survives rotation:
        records deleted by the size bound before they were read are skipped, never reported twice.
        """
        matching = self._filter(units, since_us, until_us, after_cursor)
        initial, last_seqnum = self._tail_and_high_seqnum(lines, matching)
        yield from initial
        seqnum_id = self._seqnum_id()
        current: tuple[int, Path] | None = None
        offset = 0
        while True:
            segments = _list_segments(self.directory)
            if current not in segments:
                current, offset = _segment_holding(segments, last_seqnum + 1), 0
            if current is not None:
                if not seqnum_id:
                    seqnum_id = self._seqnum_id()
                entries, consumed = self._read_segment(current[1], seqnum_id, offset)
                offset += consumed
                for entry in entries:
                    if entry.seqnum > last_seqnum:
                        last_seqnum = entry.seqnum
                        if matching.matches(entry):
                            yield entry
                # Listed before the read: a newer segment existing then means this one was already final.
                newer = [segment for segment in segments if segment[0] > current[0]]
                if newer:
                    current, offset = newer[0], 0
                    continue
            if stop is not None and stop():
                return
            time.sleep(poll_s)


def _segment_holding(segments: list[tuple[int, Path]], seqnum: int) -> tuple[int, Path] | None:
    """The segment where record ``seqnum`` is or will be (the oldest left if it was deleted)."""
    candidates = [segment for segment in segments if segment[0] <= seqnum]
    if candidates:
        return candidates[-1]
    return segments[0] if segments else None


# ---- output formats (systemd's src/shared/logs-show.c) ----

OUTPUT_MODES = (
    "short", "short-full", "short-iso", "short-iso-precise", "short-precise", "short-monotonic",
    "short-unix", "with-unit", "verbose", "json", "json-pretty", "json-sse", "json-seq", "cat",
)  # fmt: skip
_JSON_THRESHOLD = 4096  # journalctl prints null for a field of this size or more (without --all)
_ANSI_SEQUENCE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _local_or_utc(seconds: int, utc: bool) -> time.struct_time:
    return time.gmtime(seconds) if utc else time.localtime(seconds)


def _timestamp(entry: JournalEntry, mode: str, utc: bool) -> str:
    seconds, micros = divmod(entry.realtime_us, 1_000_000)
    tm = _local_or_utc(seconds, utc)
    if mode in ("short", "short-precise"):
        text = time.strftime("%b %d %H:%M:%S", tm)
        return text + (f".{micros:06d}" if mode == "short-precise" else "")
    if mode in ("short-iso", "short-iso-precise"):
        text = time.strftime("%Y-%m-%dT%H:%M:%S", tm) + (
            f".{micros:06d}" if mode == "short-iso-precise" else ""
        )
        offset_minutes = (tm.tm_gmtoff or 0) // 60
        sign = "-" if offset_minutes < 0 else "+"
        return f"{text}{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    if mode in ("short-full", "with-unit"):
        return time.strftime("%a %Y-%m-%d %H:%M:%S ", tm) + ("UTC" if utc else tm.tm_zone)
    if mode == "short-unix":
        return f"{seconds:10d}.{micros:06d}"
    assert mode == "short-monotonic", mode
    mono_seconds, mono_micros = divmod(entry.monotonic_us, 1_000_000)
    return f"[{mono_seconds:5d}.{mono_micros:06d}]"


def _is_printable(text: str) -> bool:
    # systemd's utf8_is_printable: C0 controls other than tab/newline, DEL and C1 controls are not.
    return not any((ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in text)


def _format_bytes(size: int) -> str:
    # systemd's format_bytes(): plain bytes below 1 KiB, else one decimal and a binary suffix.
    if size < 1024:
        return f"{size}B"
    value = float(size)
    for suffix in ("K", "M", "G", "T"):
        value /= 1024
        if value < 1024 or suffix == "T":
            break
    return f"{value:.1f}{suffix}"


def _format_short(entry: JournalEntry, mode: str, utc: bool, show_hostname: bool) -> str:
    prefix = _timestamp(entry, mode, utc)
    if show_hostname and entry.hostname:
        prefix += f" {entry.hostname}"
    if mode == "with-unit" and entry.unit:
        prefix += f" {entry.unit}"
    else:
        prefix += f" {entry.identifier or 'unknown'}"
    if entry.pid is not None:
        prefix += f"[{entry.pid}]"
    # Like journalctl without --all: colour sequences go, tabs become spaces, other controls make a blob.
    message = _ANSI_SEQUENCE.sub("", entry.message).replace("\t", " " * 8)
    if not _is_printable(message):
        return f"{prefix}: [{_format_bytes(len(entry.message.encode()))} blob data]\n"
    lines = message.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    indent = "\n" + " " * (len(prefix) + 2)  # continuation lines start under the message's first column
    return f"{prefix}: {indent.join(lines)}\n"


def _data_fields(entry: JournalEntry) -> list[tuple[str, str]]:
    """The entry's journald fields in the order journalctl lists them (after the __ address fields)."""
    fields = [
        ("_BOOT_ID", entry.boot_id),
        ("_TRANSPORT", entry.transport),
        ("PRIORITY", str(entry.priority)),
        ("SYSLOG_FACILITY", str(_FACILITY_DAEMON)),
        ("SYSLOG_IDENTIFIER", entry.identifier),
    ]
    if entry.pid is not None:
        fields.append(("_PID", str(entry.pid)))
    if entry.hostname:
        fields.append(("_HOSTNAME", entry.hostname))
    if entry.unit is not None:
        # journald files the manager's messages about a unit under UNIT=, its output under _SYSTEMD_UNIT=.
        fields.append(("UNIT" if entry.transport == "journal" else "_SYSTEMD_UNIT", entry.unit))
    fields.append(("MESSAGE", entry.message))
    return fields


def _json_value(name: str, value: str) -> object:
    encoded = value.encode("utf-8", "surrogatepass")
    if len(name) + 1 + len(encoded) >= _JSON_THRESHOLD:
        return None
    if not _is_printable(value):
        return list(encoded)  # journalctl shows non-printable data as an array of byte values
    return value


def _json_object(entry: JournalEntry) -> dict[str, object]:
    address = [("__CURSOR", entry.cursor), ("__REALTIME_TIMESTAMP", str(entry.realtime_us)),
               ("__MONOTONIC_TIMESTAMP", str(entry.monotonic_us))]  # fmt: skip
    return {name: _json_value(name, value) for name, value in address + _data_fields(entry)}


def _format_json(entry: JournalEntry, mode: str) -> str:
    obj = _json_object(entry)
    if mode == "json-pretty":
        # systemd's pretty JSON: a tab per level and " : " between key and value.
        members = ",\n".join(
            f"\t{json.dumps(key)} : {json.dumps(value, ensure_ascii=False)}" for key, value in obj.items()
        )
        return "{\n" + members + "\n}\n"
    compact = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    if mode == "json-sse":
        return f"data: {compact}\n\n"
    if mode == "json-seq":
        return f"\x1e{compact}\n"
    return compact + "\n"


def _format_verbose(entry: JournalEntry, utc: bool) -> str:
    seconds, micros = divmod(entry.realtime_us, 1_000_000)
    tm = _local_or_utc(seconds, utc)
    zone = "UTC" if utc else tm.tm_zone
    out = [time.strftime("%a %Y-%m-%d %H:%M:%S", tm) + f".{micros:06d} {zone} [{entry.cursor}]\n"]
    for name, value in _data_fields(entry):
        if not _is_printable(value):
            out.append(f"    {name}=[{_format_bytes(len(value.encode()))} blob data]\n")
            continue
        lines = value.split("\n")
        indent = "\n" + " " * (4 + len(name) + 1)
        out.append(f"    {name}={indent.join(lines)}\n")
    return "".join(out)


def format_entry(
    entry: JournalEntry, output: str = "short", *, utc: bool = False, show_hostname: bool = True
) -> str:
    """One entry as journalctl ``-o OUTPUT`` prints it, trailing newline included; times are local unless
    ``utc``. ``short`` gives ``Dec 07 00:40:01 host ident[pid]: message``.

    Raises ValueError, naming the valid modes, for an unknown one."""
    if output == "cat":
        return entry.message + "\n"
    if output.startswith("json"):
        if output not in OUTPUT_MODES:
            raise ValueError(_unknown_output(output))
        return _format_json(entry, output)
    if output == "verbose":
        return _format_verbose(entry, utc)
    if output in OUTPUT_MODES:
        return _format_short(entry, output, utc, show_hostname)
    raise ValueError(_unknown_output(output))


def _unknown_output(output: str) -> str:
    return f"Unknown output format '{output}'. Valid formats: {', '.join(OUTPUT_MODES)}."

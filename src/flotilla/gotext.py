"""Text as Go writes and reads it, where etcd's and etcdctl's output (or input) inherits Go's conventions:
encoding/json's escaping, ``%q`` (strconv.Quote), time.Duration's String and ParseDuration, and
time.RFC3339Nano. Debian's etcd 3.4.23 and etcdctl are built with Go 1.19, so these follow Go 1.19.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

__all__ = ["GoDurationError", "go_duration", "go_json", "go_quote", "parse_go_duration", "rfc3339nano"]

# json.dumps already escapes what Go escapes, in the same spelling (\" \\ \n \r \t, other control characters
# as lowercase \u00XX), except: Go 1.19 writes \b and \f as \u0008 and \u000c, escapes <, >, & and the
# JavaScript line separators (HTMLEscape), and writes invalid UTF-8 (a lone surrogate here) as \ufffd.
# Matching every escape pair keeps a literal backslash followed by "b" from being read as \b.
_JSON_FIXUPS = re.compile("\\\\.|[<>&\u2028\u2029\ud800-\udfff]")
_JSON_FIXED = {
    "\\b": "\\u0008", "\\f": "\\u000c", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
    "\u2028": "\\u2028", "\u2029": "\\u2029",
}  # fmt: skip


def _json_fixup(match: re.Match[str]) -> str:
    text = match.group()
    return _JSON_FIXED.get(text, text if len(text) == 2 else "\\ufffd")


def go_json(value: Any) -> str:
    """Compact JSON as Go 1.19's encoding/json writes it (UTF-8 kept, HTML characters escaped, dict keys in
    their given order as a struct's fields are); for strings, numbers, bools, None, lists, tuples, dicts."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return _JSON_FIXUPS.sub(_json_fixup, text)


_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(data: str | bytes) -> str:
    """strconv.Quote (and so ``%q``): printable runes kept, the rest escaped; a byte that is not UTF-8
    (bytes, or a str decoded with surrogateescape such as sys.argv) as ``\\xNN``."""
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    out = ['"']
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif _printable(ch):
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _printable(ch: str) -> bool:
    # Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
    if ch == " ":
        return True
    return unicodedata.category(ch)[0] in "LMNPS"


def go_duration(seconds: float) -> str:
    """Go's Duration.String: ``1.973802514s``, ``2m3.5s``, ``1h0m0s``, ``450ms``, ``850µs``, ``0s``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns, size) + unit
    hours, rest = divmod(ns, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    text = _trim(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _trim(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


class GoDurationError(ValueError):
    """time.ParseDuration's error, with Go's message. ``reason`` is "invalid", "missing unit" or
    "unknown unit" (then ``unit`` is the unknown one), so callers can word their own message."""

    def __init__(self, message: str, reason: str, unit: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.unit = unit


_UNIT_NS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
    "m": 60_000_000_000, "h": 3_600_000_000_000,
}  # fmt: skip
_NUMBER_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_UNIT_PART = re.compile(r"[^0-9.]*")
_MAX_NS = 1 << 63


def parse_go_duration(text: str) -> float:
    """time.ParseDuration, in seconds: ``300ms``, ``1.5h``, ``2h45m``, ``-1s``, a bare number only for 0;
    ASCII digits only, one sign, sub-nanosecond fractions truncated, past int64 nanoseconds invalid.
    Raises GoDurationError."""
    quoted = _time_quote(text)
    invalid = GoDurationError(f"time: invalid duration {quoted}", "invalid")
    body, negative = text, False
    if body[:1] in ("+", "-"):
        negative, body = body[0] == "-", body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise invalid
    total_ns, pos = 0, 0
    while pos < len(body):
        number = _NUMBER_PART.match(body, pos)
        assert number is not None  # the pattern matches the empty string
        whole, fraction = number.groups()
        if not (whole or fraction):
            raise invalid
        unit_match = _UNIT_PART.match(body, number.end())
        assert unit_match is not None
        unit = unit_match.group()
        if not unit:
            raise GoDurationError(f"time: missing unit in duration {quoted}", "missing unit")
        if unit not in _UNIT_NS:
            message = f"time: unknown unit {_time_quote(unit)} in duration {quoted}"
            raise GoDurationError(message, "unknown unit", unit)
        scale = _UNIT_NS[unit]
        value_ns = int(whole or "0") * scale
        if fraction:
            # Go: v += uint64(float64(f) * (float64(unit) / scale)), truncated; Go stops reading the
            # fraction's digits where int64 would overflow, past any effect on whole nanoseconds.
            fraction = fraction[:18]
            value_ns += int(int(fraction) * (scale / 10 ** len(fraction)))
        total_ns += value_ns
        if total_ns > _MAX_NS or (total_ns == _MAX_NS and not negative):
            raise invalid
        pos = unit_match.end()
    return (-total_ns if negative else total_ns) / 1e9


def _time_quote(text: str) -> str:
    # The time package's own quote(): bytes outside printable ASCII as \xNN, quotes and backslashes escaped.
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif " " <= ch < "\x80":
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape"))
    out.append('"')
    return "".join(out)


def rfc3339nano(unix_ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: nanoseconds with trailing zeros trimmed (none at all if zero)."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"

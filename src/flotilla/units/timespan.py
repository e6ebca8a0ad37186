"""systemd time spans (``parse_sec``): ``5``, ``100ms``, ``1min 30s``, ``1.5h``, ``infinity``."""

from __future__ import annotations

import re

_USEC_PER_S = 1_000_000
_MAX_USEC = 2**64 - 1  # systemd's USEC_INFINITY; anything at or above it does not fit a usec_t

# Longest spellings first so "ms" is not read as "m" then "s", and "min" not as "m" + "in".
_UNITS_S: dict[str, float] = {
    "seconds": 1,
    "second": 1,
    "sec": 1,
    "s": 1,
    "minutes": 60,
    "minute": 60,
    "min": 60,
    "months": 2_629_800,
    "month": 2_629_800,
    "M": 2_629_800,
    "msec": 1e-3,
    "ms": 1e-3,
    "m": 60,
    "hours": 3600,
    "hour": 3600,
    "hr": 3600,
    "h": 3600,
    "days": 86_400,
    "day": 86_400,
    "d": 86_400,
    "weeks": 604_800,
    "week": 604_800,
    "w": 604_800,
    "years": 31_557_600,
    "year": 31_557_600,
    "y": 31_557_600,
    "usec": 1e-6,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
}
_UNIT_ORDER = sorted(_UNITS_S, key=len, reverse=True)
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_BLANKS = " \t\n\r"


def parse_timespan(value: str, default_unit: str = "s") -> float | None:
    """Seconds in ``value`` (None for ``infinity``); ValueError says what is wrong with it.

    Components add up and may be separated by blanks or not (``1min30s``); a number without a unit
    uses ``default_unit``. Results are rounded to whole microseconds, systemd's resolution.
    """
    if default_unit not in _UNITS_S:
        raise ValueError(f"unknown default time unit {default_unit!r}")
    text = value.strip(_BLANKS)
    if text == "infinity":
        return None
    if not text:
        raise ValueError("empty time span; write a number with a unit such as 5s, 100ms or 1min 30s")
    total_us = 0
    pos = 0
    while pos < len(text):
        number = _NUMBER.match(text, pos)
        if number is None:
            raise ValueError(f"invalid time span {value!r} at {text[pos:]!r}; expected a number such as 5s")
        pos = number.end()
        while pos < len(text) and text[pos] in _BLANKS:
            pos += 1
        unit = next((u for u in _UNIT_ORDER if text.startswith(u, pos)), None)
        if unit is None:
            factor = _UNITS_S[default_unit]
        else:
            factor = _UNITS_S[unit]
            pos += len(unit)
        amount_us = float(number.group()) * factor * _USEC_PER_S
        if not amount_us < _MAX_USEC:
            raise ValueError(f"time span {value!r} is out of range (systemd's limit is about 584,000 years)")
        total_us += round(amount_us)
        while pos < len(text) and text[pos] in _BLANKS:
            pos += 1
    if total_us >= _MAX_USEC:
        raise ValueError(f"time span {value!r} is out of range (systemd's limit is about 584,000 years)")
    return total_us / _USEC_PER_S

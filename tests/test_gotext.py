"""flotilla.gotext: Go 1.19's text conventions, as Debian's etcd 3.4.23 and etcdctl write and read them.

Expected strings come from Go's encoding/json, strconv.Quote and time packages (and, for the JSON
escapes, from a real etcd 3.4.23 v2 response: ``"x\\u0008y\\u000cz\\u003c\\u0001\\x7f\\u00a0"`` raw).
"""

from __future__ import annotations

import pytest

from flotilla.gotext import GoDurationError, go_duration, go_json, go_quote, parse_go_duration, rfc3339nano

# --- encoding/json


def test_go_json_escapes_as_go_1_19():
    assert go_json({"v": "a<b>&c\b\n\u2028é", "n": None, "d": True}) == (
        '{"v":"a\\u003cb\\u003e\\u0026c\\u0008\\n\\u2028é","n":null,"d":true}'
    )
    # Go 1.19 writes \b and \f as \u00XX; DEL and U+00A0 stay raw, as real etcd's v2 answer shows.
    assert go_json("x\by\fz<\x01\x7f\u00a0") == '"x\\u0008y\\u000cz\\u003c\\u0001\x7f\u00a0"'
    assert go_json('q"\\\t\r\u2029') == '"q\\"\\\\\\t\\r\\u2029"'


def test_go_json_reads_each_escape_pair_once():
    # A literal backslash before "b" or "f" is an escaped backslash, not \b.
    assert go_json("\\b\\f\\\b") == '"\\\\b\\\\f\\\\\\u0008"'


def test_go_json_writes_invalid_utf8_as_replacement_escape():
    assert go_json(b"a\xffb".decode("utf-8", "surrogateescape")) == '"a\\ufffdb"'


def test_go_json_keeps_key_order_and_nests():
    assert go_json({"b": [1, (2, "<")], "a": {"k": False}}) == '{"b":[1,[2,"\\u003c"]],"a":{"k":false}}'


# --- strconv.Quote


def test_go_quote():
    assert go_quote('a "b"\n\x01') == '"a \\"b\\"\\n\\x01"'
    assert go_quote(b'a"b\n\xff') == '"a\\"b\\n\\xff"'
    assert go_quote("\a\v\x7fé\u00a0\U0001f600\U000e0001") == '"\\a\\v\\x7fé\\u00a0\U0001f600\\U000e0001"'
    assert go_quote("tab\there") == '"tab\\there"'


# --- time.Duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"), (0.001720967, "1.720967ms"), (0.00085, "850µs"), (62.5, "1m2.5s"), (5, "5s"),
        (3600, "1h0m0s"), (1.973802514, "1.973802514s"), (0.000000007, "7ns"), (-0.45, "-450ms"),
    ],
)  # fmt: skip
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0), ("-0", 0.0), ("1m30s", 90.0), ("1.5s", 1.5), ("500ms", 0.5), ("300us", 0.0003),
        ("2µs", 0.000002), ("-1.5h", -5400.0), ("+2h45m", 9900.0), (".5s", 0.5), ("1.s", 1.0), ("7ns", 7e-9),
        ("1.0000000001s", 1.0),  # a fraction below a nanosecond is truncated
    ],
)  # fmt: skip
def test_parse_go_duration(text, seconds):
    assert parse_go_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message", "reason"),
    [
        ("xx", 'time: invalid duration "xx"', "invalid"),
        ("", 'time: invalid duration ""', "invalid"),
        ("+-5s", 'time: invalid duration "+-5s"', "invalid"),
        (".s", 'time: invalid duration ".s"', "invalid"),
        ("5", 'time: missing unit in duration "5"', "missing unit"),
        ("1.s5", 'time: missing unit in duration "1.s5"', "missing unit"),
        ("5sec", 'time: unknown unit "sec" in duration "5sec"', "unknown unit"),
        ("٥s", 'time: invalid duration "\\xd9\\xa5s"', "invalid"),  # ASCII digits only
        ("9999999999h", 'time: invalid duration "9999999999h"', "invalid"),  # past int64 nanoseconds
    ],
)
def test_parse_go_duration_errors_are_gos(text, message, reason):
    with pytest.raises(GoDurationError) as caught:
        parse_go_duration(text)
    assert (str(caught.value), caught.value.reason) == (message, reason)
    assert isinstance(caught.value, ValueError)


def test_parse_go_duration_int64_bounds():
    assert parse_go_duration("-2562047h47m16.854775808s") == -(1 << 63) / 1e9
    with pytest.raises(GoDurationError):
        parse_go_duration("2562047h47m16.854775808s")


# --- time.RFC3339Nano


def test_rfc3339nano_trims_trailing_zeros():
    assert rfc3339nano(0) == "1970-01-01T00:00:00Z"
    assert rfc3339nano(1_700_000_000_123_400_000) == "2023-11-14T22:13:20.1234Z"
    assert rfc3339nano(1_700_000_000_000_000_001) == "2023-11-14T22:13:20.000000001Z"

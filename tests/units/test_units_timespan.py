"""systemd time spans (parse_sec, systemd.time(7))."""

import pytest

from flotilla.units import parse_timespan


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5", 5.0),
        ("0", 0.0),
        ("5s", 5.0),
        ("5 s", 5.0),
        ("100ms", 0.1),
        ("100msec", 0.1),
        ("250us", 0.00025),
        ("7usec", 0.000007),
        ("1min 30s", 90.0),
        ("1min30s", 90.0),
        ("2m", 120.0),  # m is minutes, M months
        ("2h", 7200.0),
        ("3hr", 10800.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("2 sec", 2.0),
        ("1 minute 1 second", 61.0),
        ("  10s  ", 10.0),
        ("1M", 2629800.0),
        ("1y", 31557600.0),
        ("infinity", None),
    ],
)
def test_parse(value: str, seconds: float | None) -> None:
    assert parse_timespan(value) == seconds


def test_default_unit_applies_to_bare_numbers() -> None:
    assert parse_timespan("20", "ms") == 0.02
    assert parse_timespan("20s", "ms") == 20.0


@pytest.mark.parametrize(
    "value", ["", "  ", "abc", "5x", "-5s", "5s garbage", "1e3", "5 s s", "infinit", "9" * 400]
)
def test_garbage_is_a_value_error(value: str) -> None:
    with pytest.raises(ValueError):
        parse_timespan(value)

"""Specifiers (systemd.unit(5) "Specifiers"; %N as newer systemd and fleet's code: name without suffix)."""

import pytest

from flotilla.units import SpecifierContext, UnitFileError, expand_specifiers

CTX = SpecifierContext(
    "web@a-b\\x2dc.service",
    hostname="core-01.example",
    machine_id="m" * 32,
    boot_id="b" * 32,
    user="core",
    uid=500,
    home="/home/core",
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("%n", "web@a-b\\x2dc.service"),
        ("%N", "web@a-b\\x2dc"),
        ("%p", "web"),
        ("%P", "web"),
        ("%i", "a-b\\x2dc"),
        ("%I", "a/b-c"),  # unescaped: '-' is '/', \x2d is '-'
        ("%f", "/a/b-c"),
        ("%H", "core-01.example"),
        ("%l", "core-01"),
        ("%m", "m" * 32),
        ("%b", "b" * 32),
        ("%u", "core"),
        ("%U", "500"),
        ("%h", "/home/core"),
        ("%s", "/bin/sh"),
        ("%t", "/run"),
        ("%%", "%"),
        ("100%% of %p", "100% of web"),
        ("ends with %", "ends with %"),  # a trailing lone % stays, as systemd
        ("no specifiers", "no specifiers"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand_specifiers(text, CTX) == expected


def test_plain_unit_has_empty_instance() -> None:
    ctx = SpecifierContext("redis.service")
    assert expand_specifiers("[%p|%i|%N|%j]", ctx) == "[redis||redis|redis]"
    assert expand_specifiers("%j/%J", SpecifierContext("app-web-dev\\x2d1.service")) == "dev\\x2d1/dev-1"


def test_unknown_specifier_is_an_error_with_line() -> None:
    with pytest.raises(UnitFileError) as info:
        expand_specifiers("a %y b", CTX, "x.service", 4)
    assert (info.value.path, info.value.line) == ("x.service", 4)
    assert "unknown specifier %y" in info.value.message


def test_bad_escape_in_instance_is_a_unit_file_error() -> None:
    with pytest.raises(UnitFileError, match="cannot expand %I"):
        expand_specifiers("%I", SpecifierContext("w@a\\x.service"), "w@.service", 3)

"""fleet's unit hash (unit/unit.go UnitFile.Hash over go-systemd's Serialize) and go-systemd's parser."""

import hashlib

import pytest

from flotilla.units import Option, UnitFile, UnitFileError, parse_unit_text, parse_unit_text_fleet, unit_hash

# fleet's unit/unit_test.go TestUnitHash: this unit hashes to this value.
FLEET_TEST_UNIT = "[Service]\nExecStart=/bin/sleep 100\n"
FLEET_TEST_HASH = "1c6fb6f3684bafb0c173d8b8b957ceff031180c1"


def test_known_fleet_hash() -> None:
    assert unit_hash(parse_unit_text_fleet(FLEET_TEST_UNIT)) == FLEET_TEST_HASH
    assert unit_hash(parse_unit_text(FLEET_TEST_UNIT)) == FLEET_TEST_HASH
    assert (
        unit_hash(UnitFile.from_options([Option("Service", "ExecStart", "/bin/sleep 100")]))
        == FLEET_TEST_HASH
    )
    assert unit_hash(parse_unit_text_fleet(FLEET_TEST_UNIT))[:7] == "1c6fb6f"  # fleetctl's short hash


def test_hash_ignores_layout_but_not_order_or_content() -> None:
    spaced = parse_unit_text_fleet("# comment\n\n[Service]\n  ExecStart = /bin/sleep 100  \n\n")
    assert unit_hash(spaced) == FLEET_TEST_HASH
    reordered = parse_unit_text("[Unit]\nA=1\n[Service]\nB=2\n")
    other = parse_unit_text("[Service]\nB=2\n[Unit]\nA=1\n")
    assert unit_hash(reordered) != unit_hash(other)  # section order is part of the serialization


@pytest.mark.parametrize(
    ("text", "options"),
    [
        # go-systemd keeps a continuation's backslash and newline in the value (systemd joins with a space).
        ("[Service]\nExecStart=/bin/echo a \\\n  b\n", [("Service", "ExecStart", "/bin/echo a \\\n  b")]),
        # A continuation followed by a blank line keeps one final newline.
        ("[Unit]\nDescription=a\\\n\n", [("Unit", "Description", "a\\\n")]),
        # Text before the first section is skipped.
        ("junk line\n[Unit]\nA=1\n", [("Unit", "A", "1")]),
        # A comment continues with a trailing backslash (one trailing space allowed).
        ("[Unit]\n# c \\ \nstill comment\nA=1\n", [("Unit", "A", "1")]),
        # CRLF: the \r is trimmed as blank space.
        ("[Unit]\r\nA=1\r\n", [("Unit", "A", "1")]),
        ("[Unit]\nA=\n", [("Unit", "A", "")]),
        ("", []),
    ],
)
def test_go_systemd_parser(text: str, options: list[tuple[str, str, str]]) -> None:
    assert [(o.section, o.name, o.value) for o in parse_unit_text_fleet(text).options] == options


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("[Unit", 1, "unable to find end of section"),
        ("[Unit] x\n", 1, "found garbage after section name"),
        ("[Unit]\nA\nB=1\n", 2, "unexpected newline"),
        ("[Unit]\n\nA", 3, "no '='"),
    ],
)
def test_go_systemd_parser_errors(text: str, line: int, fragment: str) -> None:
    with pytest.raises(UnitFileError) as info:
        parse_unit_text_fleet(text, "u.service")
    assert info.value.line == line and fragment in info.value.message


def test_hash_of_non_ascii_is_over_utf8() -> None:
    unit = UnitFile.from_options([Option("Unit", "Description", "café")])
    assert unit_hash(unit) == hashlib.sha1("[Unit]\nDescription=café\n".encode()).hexdigest()

"""The unit file format as systemd's config_parse reads it (src/shared/conf-parser.c) and as
go-systemd's unit.Serialize writes it (the bytes fleet hashes)."""

import pytest

from flotilla.units import Option, UnitFile, UnitFileError, parse_unit_text


def _triples(unit: UnitFile) -> list[tuple[str, str, str]]:
    return [(o.section, o.name, o.value) for o in unit.options]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Sections and Key=Value; blanks around '=' and at both ends are stripped (strstrip).
        ("[Unit]\nDescription = Hello World \n", [("Unit", "Description", "Hello World")]),
        # Repeated keys are all kept, in file order.
        (
            "[Service]\nExecStartPre=/a\nExecStartPre=/b\n",
            [("Service", "ExecStartPre", "/a"), ("Service", "ExecStartPre", "/b")],
        ),
        # An empty assignment is kept as "" (it resets list settings).
        ("[Service]\nEnvironment=\n", [("Service", "Environment", "")]),
        # '#' and ';' comment lines, also indented; blank lines ignored.
        ("# top\n[Unit]\n  ; note\n\n\tDescription=x\n", [("Unit", "Description", "x")]),
        # A value may contain '#', '=' and ';' after the first '='.
        ("[Unit]\nDescription=a=b # c ; d\n", [("Unit", "Description", "a=b # c ; d")]),
        # Backslash continuation: the backslash becomes a space, the next line is appended as is.
        ("[Service]\nExecStart=/bin/echo a \\\n  b\n", [("Service", "ExecStart", "/bin/echo a    b")]),
        ("[Service]\nExecStart=/bin/echo a\\\nb\n", [("Service", "ExecStart", "/bin/echo a b")]),
        # A comment line inside a continuation is skipped and the continuation goes on (systemd >= 240).
        ("[Service]\nExecStart=/bin/echo a \\\n# no\n b\n", [("Service", "ExecStart", "/bin/echo a   b")]),
        # An even number of trailing backslashes is an escaped backslash, not a continuation.
        ("[Unit]\nDescription=a\\\\\nX=y\n", [("Unit", "Description", "a\\\\"), ("Unit", "X", "y")]),
        # A continuation at the end of the file still yields its option.
        ("[Unit]\nDescription=a\\", [("Unit", "Description", "a")]),
        # A blank line ends a continuation.
        ("[Unit]\nDescription=a\\\n\nX=y\n", [("Unit", "Description", "a"), ("Unit", "X", "y")]),
        # UTF-8 BOM ignored; CRLF and lone CR are line ends.
        ("\ufeff[Unit]\r\nDescription=x\r\n", [("Unit", "Description", "x")]),
        ("[Unit]\rDescription=x\r", [("Unit", "Description", "x")]),
        # Sections may repeat and interleave; X- sections are kept (fleet's [X-Fleet]).
        (
            "[Unit]\nA=1\n[X-Fleet]\nGlobal=true\n[Unit]\nB=2\n",
            [("Unit", "A", "1"), ("X-Fleet", "Global", "true"), ("Unit", "B", "2")],
        ),
        # Only space/tab/CR/LF are systemd blanks: a form feed inside a value survives.
        ("[Unit]\nDescription=\fx\f\n", [("Unit", "Description", "\fx\f")]),
        ("", []),
        ("[Unit]\n", []),
    ],
)
def test_parse_as_systemd(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert _triples(parse_unit_text(text)) == expected


def test_line_numbers_are_the_first_physical_line() -> None:
    unit = parse_unit_text("# c\n[Service]\n\nExecStart=/bin/a \\\n  b\nRestart=always\n", "x.service")
    assert [o.line for o in unit.options] == [4, 6]
    assert unit.path == "x.service"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("Description=x\n", 1, "before any section"),
        ("[Unit]\nDescription\n", 2, "missing '='"),
        ("[Unit\nA=b\n", 1, "invalid section header"),
        ('[Unit]\n\n[Ser"vice]\n', 3, "bad characters"),
        ("[Unit]\n=x\n", 2, "no option name"),
        ("[Unit]\nA=1\nB \\\n C\n", 3, "missing '='"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(UnitFileError) as info:
        parse_unit_text(text, "/etc/x.service")
    assert info.value.path == "/etc/x.service"
    assert info.value.line == line
    assert fragment in info.value.message
    assert str(info.value).startswith(f"/etc/x.service:{line}: ")


def test_error_without_line_formats_path_only() -> None:
    assert str(UnitFileError("a.service", None, "bad")) == "a.service: bad"


def test_get_is_last_wins_and_get_all_resets_on_empty() -> None:
    unit = parse_unit_text("[Service]\nEnvironment=A=1\nEnvironment=\nEnvironment=B=2\nEnvironment=C=3\n")
    assert unit.get("Service", "Environment") == "C=3"
    assert unit.get("Service", "Missing") is None
    assert unit.get("Service", "Missing", "d") == "d"
    assert unit.get_all("Service", "Environment") == ["B=2", "C=3"]
    assert unit.get_option("Service", "Environment").line == 5
    assert unit.get_all("Unit", "Environment") == []


def test_dropins_come_after_the_unit_so_last_wins_and_reset_apply() -> None:
    base = parse_unit_text("[Service]\nRestart=no\nExecStart=/bin/a\n", "a.service")
    dropin = parse_unit_text(
        "[Service]\nRestart=always\nExecStart=\nExecStart=/bin/b\n", "a.service.d/x.conf"
    )
    merged = base.with_dropins(dropin)
    assert merged.get("Service", "Restart") == "always"
    assert merged.get_all("Service", "ExecStart") == ["/bin/b"]
    assert merged.path == "a.service"
    assert base.get("Service", "Restart") == "no"


def test_sections_in_first_seen_order() -> None:
    unit = parse_unit_text("[Service]\nA=1\n[Unit]\nB=2\n[Service]\nC=3\n")
    assert unit.sections() == ["Service", "Unit"]


def test_to_text_is_go_systemd_serialize() -> None:
    # Options grouped by section in first-seen order, "\n" between sections, none after the last.
    unit = UnitFile.from_options(
        [
            Option("Unit", "Description", "x"),
            Option("Service", "ExecStart", "/a"),
            Option("Unit", "After", "b"),
        ]
    )
    assert unit.to_text() == "[Unit]\nDescription=x\nAfter=b\n\n[Service]\nExecStart=/a\n"
    assert UnitFile.from_options([]).to_text() == ""


def test_equality_ignores_lines_and_path() -> None:
    a = parse_unit_text("\n\n[Unit]\nA=1\n", "a")
    b = UnitFile.from_options([Option("Unit", "A", "1")], "b")
    assert a == b and hash(a) == hash(b)
    assert a != UnitFile.from_options([Option("Unit", "A", "2")])
    # Interleaved sections equal their grouped serialization (same fleet hash); order within one counts.
    interleaved = parse_unit_text("[Unit]\nA=1\n[Service]\nB=2\n[Unit]\nC=3\n")
    assert interleaved == parse_unit_text("[Unit]\nA=1\nC=3\n[Service]\nB=2\n")
    assert interleaved != parse_unit_text("[Unit]\nC=3\nA=1\n[Service]\nB=2\n")
    assert interleaved != parse_unit_text("[Service]\nB=2\n[Unit]\nA=1\nC=3\n")


def test_round_trip_through_text() -> None:
    text = "[Unit]\nDescription=Hello\n\n[Service]\nExecStart=/bin/sh -c 'echo hi'\nEnvironment=\n"
    unit = parse_unit_text(text)
    assert unit.to_text() == text
    assert parse_unit_text(unit.to_text()) == unit

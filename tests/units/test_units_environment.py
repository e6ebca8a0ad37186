"""Environment= (config_parse_environ) and EnvironmentFile= (load_env_file) as systemd reads them."""

import pytest

from flotilla.units import (
    SpecifierContext,
    parse_environment_file,
    parse_environment_file_with_warnings,
    parse_environment_value,
    parse_environment_value_with_warnings,
)


@pytest.mark.parametrize(
    ("value", "pairs"),
    [
        ("A=1", [("A", "1")]),
        ("A=1 B=2", [("A", "1"), ("B", "2")]),
        # Quote a whole assignment that contains blanks.
        ('"A=x y" B=z', [("A", "x y"), ("B", "z")]),
        ("'A=x y'", [("A", "x y")]),
        ('A="x y"', [("A", "x y")]),  # quotes may also start after '=' (they are removed anywhere)
        ("A=", [("A", "")]),
        ("A==b", [("A", "=b")]),
        # No $ expansion in values.
        ("A=$B B=${C}", [("A", "$B"), ("B", "${C}")]),
        (r"A=\x41\n", [("A", "A\n")]),
        # Later assignments of the same name stay in order (the caller lets the last win).
        ("A=1 A=2", [("A", "1"), ("A", "2")]),
        ("", []),
    ],
)
def test_environment_value(value: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_environment_value(value) == pairs


@pytest.mark.parametrize(
    ("value", "pairs", "warning"),
    [
        ("A=1 novalue B=2", [("A", "1"), ("B", "2")], "no '='"),
        ("1A=1 B=2", [("B", "2")], "not a valid variable name"),
        ("A-B=1", [], "not a valid variable name"),
        ("=x", [], "not a valid variable name"),
        (r"A=\x01", [], "control characters"),
        # A syntax error ends the line; what came before stays (systemd already stored it).
        ('A=1 "B=2', [("A", "1")], "unterminated"),
        (r"A=1 B=\q", [("A", "1")], "invalid escape"),
    ],
)
def test_invalid_assignments_are_skipped_with_a_warning(
    value: str, pairs: list[tuple[str, str]], warning: str
) -> None:
    got, warnings = parse_environment_value_with_warnings(value, "a.service", 9)
    assert got == pairs
    assert len(warnings) == 1 and warning in warnings[0] and warnings[0].startswith("a.service:9: ")


def test_environment_value_expands_specifiers() -> None:
    ctx = SpecifierContext("db@5432.service")
    assert parse_environment_value("PORT=%i NAME=%p %%=x", specifiers=ctx) == [
        ("PORT", "5432"),
        ("NAME", "db"),
    ]


ENV_FILE = """\
# a comment
; another
A=1
  B = two words\t
C="quoted \\"inner\\" \\$HOME \\n"
D='single \\ "raw"'
E=joined\\
line
F=
G="multi
line"
H=a # not a comment
I=x\\{blank}
export J=1
K
1L=2
M="unterminated
""".format(blank=" ")  # a blank after the backslash; ruff strips trailing ones


def test_environment_file() -> None:
    pairs, warnings = parse_environment_file_with_warnings(ENV_FILE, "/etc/app.env")
    assert pairs == [
        ("A", "1"),
        ("B", "two words"),
        ("C", 'quoted "inner" $HOME \\n'),  # only \" \\ \$ \` unescape inside double quotes
        ("D", 'single \\ "raw"'),
        ("E", "joinedline"),
        ("F", ""),
        ("G", "multi\nline"),
        ("H", "a # not a comment"),
        ("I", "x "),  # an escaped blank is kept
        ("M", "unterminated\n"),  # a quote open at the end still yields its value
    ]
    assert [w.split(":")[1] for w in warnings] == ["14", "15", "16"]
    assert parse_environment_file(ENV_FILE, "/etc/app.env") == pairs


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("", []),
        ("A=1", [("A", "1")]),  # no final newline
        ("A=1\r\nB=2\r\n", [("A", "1"), ("B", "2")]),
        ("A='x'y 'z'", [("A", "xy 'z'")]),  # after a closing quote, a later quote is literal
        ("# only\\\nA=1\nB=2", [("B", "2")]),  # a backslash-newline continues a comment
    ],
)
def test_environment_file_edges(text: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_environment_file(text, "f") == pairs

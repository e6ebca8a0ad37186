"""Exec lines as systemd's config_parse_exec parses them and replace_env_argv expands them
(systemd.service(5) "Command lines"; facts in shared/reference/systemd-units.md)."""

import pytest

from flotilla.units import ExecCommand, SpecifierContext, UnitFileError, parse_exec_value, replace_env


def _words(value: str) -> list[tuple[str, ...]]:
    return [c.words for c in parse_exec_value(value)]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", []),  # an empty value resets the list
        ("   ", []),
        ("/bin/sleep 100", [("/bin/sleep", "100")]),
        # Blanks split; runs of blanks are one separator.
        ("/bin/echo  a\tb", [("/bin/echo", "a", "b")]),
        # Double and single quotes group, and may sit inside a word.
        ('/bin/echo "a b" \'c d\' x"y z"w', [("/bin/echo", "a b", "c d", "xy zw")]),
        ('/bin/echo ""', [("/bin/echo", "")]),  # an empty quoted word is an argument
        # C escapes, inside and outside quotes.
        (
            r"/bin/echo \n \t \\ \" \' \x41 \101 \s",
            [("/bin/echo", "\n", "\t", "\\", '"', "'", "A", "A", " ")],
        ),
        (r'/bin/echo "a\"b"', [("/bin/echo", 'a"b')]),
        (r"/bin/echo \xc3\xa9", [("/bin/echo", "é")]),
        (r"/bin/echo \u00e9", [("/bin/echo", "é")]),
        # An unknown escape in an argument is kept as written (EXTRACT_CUNESCAPE_RELAX).
        (r"/bin/grep a\.b", [("/bin/grep", "a\\.b")]),
        # ';' as its own word separates commands; '\;' is a literal ';' argument; 'a;' is just a word.
        ("/bin/a 1 ; /bin/b 2", [("/bin/a", "1"), ("/bin/b", "2")]),
        ("/bin/find . -exec rm {} \\;", [("/bin/find", ".", "-exec", "rm", "{}", ";")]),
        ("/bin/echo a; b", [("/bin/echo", "a;", "b")]),
        ("/bin/a ;", [("/bin/a",)]),  # a trailing separator adds nothing
        # The program may be a bare name (resolved by the supervisor, as systemd >= 239).
        ("sleep 1", [("sleep", "1")]),
        # '$' words are kept for run-time expansion; specifiers without a context are left alone.
        ("/bin/echo $X ${Y} %i", [("/bin/echo", "$X", "${Y}", "%i")]),
    ],
)
def test_words(value: str, words: list[tuple[str, ...]]) -> None:
    assert _words(value) == words


@pytest.mark.parametrize(
    ("value", "ignore", "argv0", "privileged", "program"),
    [
        ("/bin/x", False, False, False, "/bin/x"),
        ("-/bin/x", True, False, False, "/bin/x"),
        ("@/bin/x y", False, True, False, "/bin/x"),
        ("+/bin/x", False, False, True, "/bin/x"),
        ("-@/bin/x y", True, True, False, "/bin/x"),
        ("@-/bin/x y", True, True, False, "/bin/x"),
        ("+-@/bin/x y", True, True, True, "/bin/x"),
        ("!!/bin/x", False, False, False, "/bin/x"),
    ],
)
def test_prefixes_combine_in_any_order(
    value: str, ignore: bool, argv0: bool, privileged: bool, program: str
) -> None:
    (command,) = parse_exec_value(value)
    assert (command.ignore_failure, command.argv0_from_second, command.privileged) == (
        ignore,
        argv0,
        privileged,
    )
    assert command.program == program


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('/bin/echo "abc', 'unterminated " quote'),
        ("/bin/echo 'abc", "unterminated ' quote"),
        ("-", "only the prefixes"),
        ("-@", "only the prefixes"),
        ("; /bin/a", "empty command"),
        ("/bin/a ; ; /bin/b", "empty command"),
        ("@/bin/x", "only the program"),
        ("%h/bin/x", "may not contain specifiers"),
        ("/opt/%i/run", "may not contain specifiers"),
        ("bin/x", "relative"),
        ("./x", "relative"),
        ("/usr/bin/", "directory"),
        ("--/bin/x", "relative"),  # each prefix once: the second '-' belongs to the path
        (r"\q/bin/x", "invalid escape"),  # the program word does not get the relaxed escapes
    ],
)
def test_errors_carry_file_and_line(value: str, fragment: str) -> None:
    with pytest.raises(UnitFileError) as info:
        parse_exec_value(value, "web.service", 7)
    assert (info.value.path, info.value.line) == ("web.service", 7)
    assert fragment in info.value.message


def test_specifiers_expand_in_arguments_only() -> None:
    ctx = SpecifierContext("web@8080.service", hostname="core-01")
    (command,) = parse_exec_value("/bin/serve --port %i --name %n@%H 100%%", specifiers=ctx)
    assert command.words == ("/bin/serve", "--port", "8080", "--name", "web@8080.service@core-01", "100%")
    with pytest.raises(UnitFileError, match="unknown specifier %y"):
        parse_exec_value("/bin/x %y", "a.service", 2, specifiers=ctx)


ENV = {"ONE": "1", "WORDS": "a  b\tc", "EMPTY": "", "SPACEY": " x "}


@pytest.mark.parametrize(
    ("value", "argv"),
    [
        # A word that is exactly $NAME splits the value on blanks.
        ("/bin/e $WORDS", ["/bin/e", "a", "b", "c"]),
        # An unset or empty $NAME word yields no argument at all.
        ("/bin/e $UNSET x", ["/bin/e", "x"]),
        ("/bin/e $EMPTY", ["/bin/e"]),
        # ${NAME} substitutes in place and stays one argument, even if empty or with blanks.
        ("/bin/e ${WORDS}", ["/bin/e", "a  b\tc"]),
        ("/bin/e ${UNSET}", ["/bin/e", ""]),
        ("/bin/e --n=${ONE}x", ["/bin/e", "--n=1x"]),
        ("/bin/e ${SPACEY}", ["/bin/e", " x "]),
        # $$ is a literal $; a $ not followed by { stays inside a word; an unclosed ${ stays literal.
        ("/bin/e $$ONE a$ONE ${ONE", ["/bin/e", "$ONE", "a$ONE", "${ONE"]),
        # Quoting happens at parse time: "$WORDS" still splits (a known systemd gotcha).
        ('/bin/e "$WORDS"', ["/bin/e", "a", "b", "c"]),
        # With @ the second word is argv[0] and the first the program.
        ("@/bin/sh mysh -c ${ONE}", ["mysh", "-c", "1"]),
        # ':' turns expansion off.
        (":/bin/e $ONE ${ONE}", ["/bin/e", "$ONE", "${ONE}"]),
    ],
)
def test_expand(value: str, argv: list[str]) -> None:
    (command,) = parse_exec_value(value)
    program, got = command.expand(ENV)
    assert program == "/bin/e" if not value.startswith("@") else program == "/bin/sh"
    assert got == argv


def test_program_path_is_never_expanded() -> None:
    command = ExecCommand(("$X", "a"), False, False, False, None)
    assert command.expand({"X": "/bin/true"}) == ("$X", ["$X", "a"])


def test_replace_env_alone() -> None:
    assert replace_env("a${B}c$$d", {"B": "-"}) == "a-c$d"


def test_line_is_recorded() -> None:
    assert [c.line for c in parse_exec_value("/bin/a ; /bin/b", line=12)] == [12, 12]

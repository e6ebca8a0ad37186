"""Property tests: no input makes a parser fail with anything but its documented errors, every
UnitFileError from the file parser points at a line of the input, and text round-trips.

Runs are bounded (max_examples) and keep no example database in the tree; hypothesis prints the
failing example and a reproduction seed when one fails.
"""

import string

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flotilla.units import (
    ExecCommand,
    FleetOptionsError,
    Option,
    SpecifierContext,
    UnitError,
    UnitFile,
    UnitFileError,
    UnitNameError,
    escape_name,
    expand_specifiers,
    fleet_options,
    parse_environment_file_with_warnings,
    parse_environment_value_with_warnings,
    parse_exec_value,
    parse_timespan,
    parse_unit_name,
    parse_unit_text,
    parse_unit_text_fleet,
    service_config,
    unescape_name,
    unit_hash,
    validate_fleet_options,
)

BOUNDED = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# Characters that make parsers take their interesting branches.
_SPICY = "[]=#;\\\"' \t\r\n%$@-+:!{}x\x00\ufeff\u00e9"
spicy_text = st.text(alphabet=st.sampled_from(_SPICY) | st.characters(), max_size=200)
decoded_bytes = st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape"))

_KEYS = (
    "Description Requires After Wants BindsTo Type ExecStart ExecStartPre ExecStop ExecStopPost Environment"
    " EnvironmentFile Restart RestartSec TimeoutStartSec TimeoutSec KillMode KillSignal SuccessExitStatus"
    " RemainAfterExit WorkingDirectory User PIDFile StandardOutput NotifyAccess StartLimitBurst WantedBy"
    " MachineMetadata Conflicts Global MachineOf MachineID Replaces Bogus"
).split()
_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "/bin/true",
            "-/bin/false x",
            "@/bin/sh sh -c 'echo $X'",
            "always",
            "oneshot",
            "5s",
            "0",
            "infinity",
            "yes",
            "SIGINT",
            "a.service b.target",
            '"A=1 2" B=3',
            "%i %n %p",
            "-/etc/env",
            "web@*.service",
            '"a=b" "c=d"',
            "/bin/a ; /bin/b",
            "1 SIGKILL",
            "~",
            "notify",
        ]  # fmt: skip
    ),
    st.text(alphabet=_SPICY + string.ascii_letters, max_size=30),
)


@st.composite
def unit_shaped_text(draw: st.DrawFn, junk: bool = True) -> str:
    """Lines that look like a unit file, with the odd broken one unless ``junk`` is off."""
    kinds = ["section", "option", "option", "option", "comment", "blank", "cont"] + ["junk"] * junk
    lines = [] if junk else ["[Unit]"]
    for _ in range(draw(st.integers(0, 15))):
        kind = draw(st.sampled_from(kinds))
        if kind == "section":
            lines.append(f"[{draw(st.sampled_from(['Unit', 'Service', 'Install', 'X-Fleet', 'Bad']))}]")
        elif kind == "option":
            lines.append(f"{draw(st.sampled_from(_KEYS))}={draw(_VALUES)}")
        elif kind == "comment":
            lines.append(draw(st.sampled_from(["#", ";", "  #"])) + draw(st.text(max_size=10)))
        elif kind == "cont":
            lines.append(f"{draw(st.sampled_from(_KEYS))}={draw(_VALUES)} \\")
        elif kind == "junk":
            lines.append(draw(spicy_text))
        else:
            lines.append("")
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines)


def _line_count(text: str) -> int:
    return text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1


def _check_unit_text(text: str) -> UnitFile | None:
    try:
        unit = parse_unit_text(text, "p.service")
    except UnitFileError as exc:
        assert exc.line is not None and 1 <= exc.line <= _line_count(text), (exc, text)
        assert str(exc).startswith(f"p.service:{exc.line}: ")
        return None
    for option in unit.options:
        assert option.line is not None and 1 <= option.line <= _line_count(text)
    return unit


@BOUNDED
@given(st.one_of(spicy_text, decoded_bytes, unit_shaped_text()))
def test_unit_parser_raises_only_unit_file_errors_with_lines(text: str) -> None:
    _check_unit_text(text)


@BOUNDED
@given(unit_shaped_text(junk=False))
def test_parsed_units_round_trip_through_to_text(text: str) -> None:
    unit = _check_unit_text(text)
    assume(unit is not None)
    # A value ending in a backslash cannot be written back (systemd would read a continuation).
    assume(not any(o.value.endswith("\\") for o in unit.options))
    again = parse_unit_text(unit.to_text())
    assert again == unit
    assert again.to_text() == unit.to_text()
    assert unit_hash(again) == unit_hash(unit)


_SAFE_NAME = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=12)
_SAFE_VALUE = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=30
)


@st.composite
def option_lists(draw: st.DrawFn) -> list[Option]:
    options = []
    for _ in range(draw(st.integers(0, 10))):
        # Blank-edged values cannot survive text (both parsers strip); Python's blanks cover Go's.
        value = draw(_SAFE_VALUE).strip()
        assume(not value.endswith("\\"))
        options.append(Option(draw(st.sampled_from(["Unit", "Service", "X-Fleet"])), draw(_SAFE_NAME), value))
    return options


@BOUNDED
@given(option_lists())
def test_option_lists_round_trip_for_both_parsers(options: list[Option]) -> None:
    unit = UnitFile.from_options(options)
    text = unit.to_text()
    triples = [(o.section, o.name, o.value) for o in options]
    grouped = sorted(triples, key=lambda t: unit.sections().index(t[0]))  # stable: keeps in-section order
    assert [(o.section, o.name, o.value) for o in parse_unit_text(text).options] == grouped
    # What fleetctl would send for the same text.
    assert [(o.section, o.name, o.value) for o in parse_unit_text_fleet(text).options] == grouped
    assert parse_unit_text(text) == unit


@BOUNDED
@given(st.one_of(spicy_text, decoded_bytes))
def test_fleet_parser_raises_only_unit_file_errors(text: str) -> None:
    try:
        unit = parse_unit_text_fleet(text)
    except UnitFileError as exc:
        assert exc.line is not None and 1 <= exc.line <= text.count("\n") + 1
        return
    assert len(unit_hash(unit)) == 40


@BOUNDED
@given(spicy_text, st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=4))
def test_exec_parser_and_expansion(value: str, env: dict[str, str]) -> None:
    ctx = SpecifierContext("w@i.service")
    try:
        commands = parse_exec_value(value, "p.service", 3, ctx)
    except UnitFileError as exc:
        assert (exc.path, exc.line) == ("p.service", 3)
        return
    for command in commands:
        assert isinstance(command, ExecCommand) and command.words
        program, argv = command.expand(env)
        assert program == command.words[0] and argv


@BOUNDED
@given(st.one_of(spicy_text, decoded_bytes))
def test_environment_parsers_never_raise_without_specifiers(text: str) -> None:
    pairs, _ = parse_environment_value_with_warnings(text)
    file_pairs, _ = parse_environment_file_with_warnings(text, "env")
    for name, _value in pairs + file_pairs:
        assert name and name[0] not in string.digits


@BOUNDED
@given(st.one_of(spicy_text, st.text(alphabet="0123456789. smhdwyuecinfty", max_size=20)))
def test_timespan_raises_only_value_error(text: str) -> None:
    try:
        seconds = parse_timespan(text)
    except ValueError:
        return
    assert seconds is None or seconds >= 0


@BOUNDED
@given(spicy_text, st.sampled_from(["a.service", "w@x\\x2dy.service", "odd", "w@\\xzz.service"]))
def test_specifiers_raise_only_unit_file_errors(text: str, name: str) -> None:
    try:
        expand_specifiers(text, SpecifierContext(name), "p", 1)
    except UnitFileError as exc:
        assert exc.line == 1


@BOUNDED
@given(st.one_of(spicy_text, st.text(alphabet="ab@.-\\x2dservice", max_size=30)))
def test_names_raise_only_unit_name_errors(text: str) -> None:
    try:
        name = parse_unit_name(text)
    except UnitNameError:
        pass
    else:
        assert name.name == text
    try:
        assert unescape_name(escape_name(text)) == text
    except UnicodeEncodeError:
        pass  # lone surrogates cannot be escaped as UTF-8 bytes
    try:
        unescape_name(text)
    except UnitNameError:
        pass


@BOUNDED
@given(unit_shaped_text(junk=False), st.sampled_from(["a.service", "w@1.service", "t.target", "s.socket"]))
def test_service_config_raises_only_unit_errors(text: str, name: str) -> None:
    unit = _check_unit_text(text)
    assume(unit is not None)
    try:
        config = service_config(unit, name)
    except UnitFileError as exc:
        assert exc.path == "p.service"
        assert exc.line is None or 1 <= exc.line <= _line_count(text)
        return
    except UnitError as exc:  # pragma: no cover - would be a bug: only UnitFileError is documented
        raise AssertionError(f"unexpected {type(exc).__name__}: {exc}") from exc
    assert config.name == name
    options = fleet_options(unit, name)
    try:
        validate_fleet_options(options)
    except FleetOptionsError:
        pass

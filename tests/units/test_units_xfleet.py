"""[X-Fleet] options with fleet's rules (job/job.go, unit/unit.go, api/units.go ValidateOptions)."""

import pytest

from flotilla.units import (
    FleetOptions,
    FleetOptionsError,
    fleet_options,
    go_path_match,
    parse_unit_text,
    split_multivalue,
    validate_fleet_options,
    validate_fleet_unit,
)


def _opts(body: str, name: str | None = "x.service") -> FleetOptions:
    return fleet_options(parse_unit_text(f"[Service]\nExecStart=/bin/a\n[X-Fleet]\n{body}\n"), name)


@pytest.mark.parametrize(
    ("value", "values"),
    [
        ("a=b", ["a=b"]),
        ('"a=b" "c=d"', ["a=b", "c=d"]),  # several pairs only when the whole value is quoted
        ('"a=b c"', ["a=b c"]),
        ('a="b c"', ['a="b c"']),  # does not start with a quote: one value, quotes kept
        ('"a=b"  "c=d"', ["a=b", "", "c=d"]),  # fleet splits on each space outside quotes
        ("", [""]),
    ],
)
def test_split_multivalue(value: str, values: list[str]) -> None:
    assert split_multivalue(value) == values


def test_typed_options() -> None:
    opts = _opts(
        'MachineMetadata="region=us-east" "disk=ssd"\nMachineMetadata=region=us-west\n'
        "X-ConditionMachineMetadata=role=web\nMachineMetadata=bad\nMachineMetadata=a=b=c\n"
        "Conflicts=web@*.service  db.service\nX-Conflicts=old.service\nMachineOf=db.service\n"
        "X-ConditionMachineOf=cache.service\nReplaces=old@*.service\nGlobal=no\nGlobal=On\nFrobnicate=1"
    )
    # Different keys AND, values of one key OR (also across lines); old names count.
    assert opts.machine_metadata == (
        ("role", ("web",)),
        ("region", ("us-east", "us-west")),
        ("disk", ("ssd",)),
    )
    assert opts.matches_metadata({"role": "web", "region": "us-west", "disk": "ssd"})
    assert not opts.matches_metadata({"role": "web", "region": "eu", "disk": "ssd"})
    assert not opts.matches_metadata({"region": "us-west", "disk": "ssd"})  # a missing key is ineligible
    assert opts.conflicts == ("old.service", "web@*.service", "db.service")  # split on blanks
    assert opts.machine_of == ("cache.service", "db.service")
    assert opts.replaces == ("old@*.service",)
    assert opts.global_ is True  # the last Global wins; truthy case-insensitively
    assert opts.machine_id is None
    assert 'unrecognized requirement in [X-Fleet] section: "Frobnicate"' in opts.warnings
    assert sum("metadata is written key=value" in w for w in opts.warnings) == 2


@pytest.mark.parametrize(
    ("body", "machine_id"),
    [
        ("MachineID=abc\nMachineID=def", "abc"),  # fleet takes the first value
        ("X-ConditionMachineID=old", "old"),
        ("X-ConditionMachineBootID=boot", "boot"),
        ("MachineID=new\nX-ConditionMachineID=old", "new"),
        ("", None),
    ],
)
def test_machine_id(body: str, machine_id: str | None) -> None:
    assert _opts(body).machine_id == machine_id


@pytest.mark.parametrize(
    ("value", "truthy"),
    [(v, True) for v in ("true", "YES", "1", "on", "t", "T")]
    + [(v, False) for v in ("false", "no", "0", "off", "y", "2", "")],
)
def test_global_truthy_values(value: str, truthy: bool) -> None:
    assert _opts(f"Global={value}").global_ is truthy


def test_specifiers_n_N_p_i_only() -> None:
    opts = _opts("Conflicts=%p@*.service\nMachineOf=%N-peer.service %i %n %H", "web@8080.service")
    assert opts.conflicts == ("web@*.service",)
    assert opts.machine_of == ("web@8080-peer.service 8080 web@8080.service %H",)  # %H is not fleet's
    # Without a name (fleet's API validation) nothing is expanded.
    assert _opts("Conflicts=%p@*", None).conflicts == ("%p@*",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("MachineID=a\nMachineOf=b.service", "MachineID cannot be used with Peers"),
        ("MachineID=a\nConflicts=b*", "MachineID cannot be used with Conflicts"),
        ("MachineID=a\nGlobal=true", "MachineID cannot be used with Global"),
        ("MachineID=a\nReplaces=b*", "MachineID cannot be used with Replaces"),
        ("Global=true\nMachineOf=b.service", "Global cannot be used with Peers"),
        ("Global=true\nReplaces=b*", "Global cannot be used with Replaces"),
        ("Conflicts=a*\nReplaces=b*", "Conflicts cannot be used with Replaces"),
        (
            "MachineOf=db.service\nConflicts=d*",
            'unresolvable requirements: peer "db.service" matches conflict "d*"',
        ),
        (
            "MachineOf=db.service\nReplaces=db.*",
            'unresolvable requirements: peer "db.service" matches replace "db.*"',
        ),
        ("X-ConditionMachineID=a\nX-Conflicts=b", "MachineID cannot be used with Conflicts"),
    ],
)
def test_rejected_combinations_use_fleets_messages(body: str, message: str) -> None:
    with pytest.raises(FleetOptionsError) as info:
        validate_fleet_options(_opts(body))
    assert str(info.value) == message


@pytest.mark.parametrize(
    "body",
    [
        "",
        "Global=true\nConflicts=a*\nMachineMetadata=a=b",
        "MachineOf=db.service\nConflicts=web*",
        "MachineID=a",
    ],
)
def test_accepted_combinations(body: str) -> None:
    validate_fleet_options(_opts(body))


def test_validate_fleet_unit_checks_line_length_and_combinations() -> None:
    long_unit = parse_unit_text("[Service]\nExecStart=/bin/echo " + "x" * 2048 + "\n")
    with pytest.raises(FleetOptionsError, match="line too long"):
        validate_fleet_unit(long_unit)
    with pytest.raises(FleetOptionsError, match="Global cannot be used with Replaces"):
        validate_fleet_unit(parse_unit_text("[X-Fleet]\nGlobal=1\nReplaces=a*\n"))
    assert validate_fleet_unit(parse_unit_text("[X-Fleet]\nGlobal=1\n")).global_


@pytest.mark.parametrize(
    ("pattern", "name", "matched"),
    [
        ("web@*.service", "web@1.service", True),
        ("web@*.service", "web.service", False),
        ("*", "anything.service", True),
        ("?.service", "a.service", True),
        ("[a-c].service", "b.service", True),
        ("[^a-c].service", "b.service", False),
        ("[^a-c].service", "d.service", True),
        ("\\*.service", "*.service", True),
        ("\\*.service", "a.service", False),
        ("a*", "a/b", False),  # '*' does not cross '/'
        ("[", "[", False),  # a bad pattern matches nothing (fleet ignores ErrBadPattern)
        ("[]", "]", False),
        ("a\\", "a", False),
        ("db.service", "db.service", True),
    ],
)
def test_go_path_match(pattern: str, name: str, matched: bool) -> None:
    assert go_path_match(pattern, name) is matched

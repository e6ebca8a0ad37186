"""fleet's ``[X-Fleet]`` section as typed options, with fleet's rules (job/job.go, unit/unit.go,
api/units.go ValidateOptions).

* Every [X-Fleet] value is first split by fleet's multi-value rule: a value that starts and ends with ``"``
  is several quoted values separated by spaces (``MachineMetadata="a=b" "c=d"``); any other value is one.
* ``MachineID`` (else the old ``X-ConditionMachineID``, else ``X-ConditionMachineBootID``): the first value.
* ``MachineOf`` and ``X-ConditionMachineOf``: exact unit names, one per value (not split on blanks).
* ``MachineMetadata`` and ``X-ConditionMachineMetadata``: ``k=v`` pairs; a pair without exactly one ``=`` or
  with an empty side is dropped. Keys AND, values of one key OR, across lines too.
* ``Conflicts`` and ``X-Conflicts``: globs (Go ``path.Match``), each value split on blanks.
* ``Global``: the last value, true for ``true/yes/1/on/t`` in any case. ``Replaces``: globs, one per value.
* Specifiers ``%n %N %p %i`` only, replaced literally as fleet's ``unitPrintf`` (``%N`` is the name without
  its suffix); fleet's API validates options before a name is attached, so ``validate_fleet_unit`` does not
  expand them either.
* Unknown keys only warn (fleet's text: ``unrecognized requirement in [X-Fleet] section: "Key"``).

Empty values are kept as fleet keeps them: ``MachineID=`` pins to machine ``""``, which matches no machine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .errors import FleetOptionsError
from .unitfile import UnitFile

SECTION = "X-Fleet"
KNOWN_KEYS = frozenset(
    {
        "MachineID",
        "X-ConditionMachineID",
        "X-ConditionMachineBootID",
        "X-ConditionMachineOf",
        "MachineOf",
        "X-Conflicts",
        "Conflicts",
        "X-ConditionMachineMetadata",
        "MachineMetadata",
        "Global",
        "Replaces",
    }
)
_TRUTHY = frozenset({"true", "yes", "1", "on", "t"})
GO_LINE_MAX = 2048  # go-systemd's SYSTEMD_LINE_MAX, checked by fleet's API on submitted units


@dataclass(frozen=True)
class FleetOptions:
    """The scheduling requirements of one unit. ``machine_metadata`` is ((key, (value, ...)), ...) in
    first-seen order: every key must match (AND), any of its values will do (OR)."""

    machine_id: str | None = None
    machine_of: tuple[str, ...] = ()
    machine_metadata: tuple[tuple[str, tuple[str, ...]], ...] = ()
    conflicts: tuple[str, ...] = ()
    global_: bool = False
    replaces: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def metadata_dict(self) -> dict[str, frozenset[str]]:
        return {key: frozenset(values) for key, values in self.machine_metadata}

    def matches_metadata(self, machine_metadata: dict[str, str]) -> bool:
        """fleet's agent/state.go rule: every required key present with one of its values."""
        return all(machine_metadata.get(key) in values for key, values in self.machine_metadata)


def _go_quote(text: str) -> str:
    # Go's %q for the names fleet quotes in its messages (double quotes, backslash escapes).
    return json.dumps(text, ensure_ascii=False)


def split_multivalue(value: str) -> list[str]:
    """fleet's ``parseMultivalueLine``: ``"a=b" "c=d"`` is two values; quotes are dropped, a space
    outside quotes separates. A value not both starting and ending with ``"`` is returned whole."""
    if not (value.startswith('"') and value.endswith('"')):
        return [value]
    values: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == " " and not quoted:
            values.append("".join(current))
            current = []
        else:
            current.append(ch)
    values.append("".join(current))
    return values


def _unit_printf(value: str, name: str) -> str:
    # fleet's unitPrintf: four plain replacements in this order, nothing else is a specifier.
    stem, _, _ = name.rpartition(".")
    prefix, at, instance = stem.partition("@")
    for spec, text in (("%n", name), ("%N", stem), ("%p", prefix), ("%i", instance if at else "")):
        value = value.replace(spec, text)
    return value


def _requirements(unit: UnitFile, name: str | None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    expand = name is not None and "." in name  # fleet expands only when the name has a suffix
    for option in unit.options:
        if option.section != SECTION:
            continue
        values = split_multivalue(option.value)
        if expand:
            values = [_unit_printf(v, name) for v in values]  # type: ignore[arg-type]
        found.setdefault(option.name, []).extend(values)
    return found


def fleet_options(unit: UnitFile, name: str | None) -> FleetOptions:
    """The [X-Fleet] options of ``unit`` named ``name`` (None: no specifier expansion, as fleet's API)."""
    req = _requirements(unit, name)
    warnings = [
        f"unrecognized requirement in [X-Fleet] section: {_go_quote(key)}"
        for key in req
        if key not in KNOWN_KEYS
    ]
    machine_id = None
    for key in ("MachineID", "X-ConditionMachineID", "X-ConditionMachineBootID"):
        if req.get(key):
            machine_id = req[key][0]
            break
    metadata: dict[str, list[str]] = {}
    for key in ("X-ConditionMachineMetadata", "MachineMetadata"):
        for pair in req.get(key, []):
            parts = pair.split("=")
            if len(parts) != 2 or not parts[0] or not parts[1]:
                warnings.append(f"ignoring {key}={pair!r}: metadata is written key=value")
                continue
            values = metadata.setdefault(parts[0], [])
            if parts[1] not in values:
                values.append(parts[1])
    conflicts = [
        word for key in ("X-Conflicts", "Conflicts") for value in req.get(key, []) for word in value.split()
    ]
    global_values = req.get("Global", [])
    return FleetOptions(
        machine_id=machine_id,
        machine_of=tuple(req.get("X-ConditionMachineOf", []) + req.get("MachineOf", [])),
        machine_metadata=tuple((key, tuple(values)) for key, values in metadata.items()),
        conflicts=tuple(conflicts),
        global_=bool(global_values) and global_values[-1].lower() in _TRUTHY,
        replaces=tuple(req.get("Replaces", [])),
        warnings=tuple(warnings),
    )


def validate_fleet_options(options: FleetOptions) -> None:
    """fleet's ValidateOptions combination checks, in its order and with its messages (HTTP 400)."""
    for peer in dict.fromkeys(options.machine_of):
        for conflict in dict.fromkeys(options.conflicts):
            if go_path_match(conflict, peer):
                peer_q, conflict_q = _go_quote(peer), _go_quote(conflict)
                raise FleetOptionsError(
                    f"unresolvable requirements: peer {peer_q} matches conflict {conflict_q}"
                )
        for replace in dict.fromkeys(options.replaces):
            if go_path_match(replace, peer):
                raise FleetOptionsError(
                    f"unresolvable requirements: peer {_go_quote(peer)} matches replace {_go_quote(replace)}"
                )
    has_target = options.machine_id is not None
    rules = (
        (has_target and bool(options.machine_of), "MachineID cannot be used with Peers"),
        (has_target and bool(options.conflicts), "MachineID cannot be used with Conflicts"),
        (has_target and options.global_, "MachineID cannot be used with Global"),
        (has_target and bool(options.replaces), "MachineID cannot be used with Replaces"),
        (options.global_ and bool(options.machine_of), "Global cannot be used with Peers"),
        (options.global_ and bool(options.replaces), "Global cannot be used with Replaces"),
        (bool(options.conflicts) and bool(options.replaces), "Conflicts cannot be used with Replaces"),
    )
    for broken, message in rules:
        if broken:
            raise FleetOptionsError(message)


def validate_fleet_unit(unit: UnitFile) -> FleetOptions:
    """What fleet's API checks on a submitted unit: line length, then the [X-Fleet] combinations."""
    for number, line in enumerate(unit.to_text().split("\n"), start=1):
        if len(line.encode("utf-8", "surrogatepass")) >= GO_LINE_MAX:
            raise FleetOptionsError(f"line too long (max {GO_LINE_MAX} bytes): line {number} of the unit")
    options = fleet_options(unit, None)
    validate_fleet_options(options)
    return options


def go_path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match`` (``*``, ``?``, ``[^a-z]``, ``\\`` escapes; no match across ``/``). A malformed
    pattern matches nothing, as fleet ignores Go's ErrBadPattern."""
    regex = _go_glob_regex(pattern)
    return regex is not None and regex.fullmatch(name) is not None


def _go_glob_regex(pattern: str) -> re.Pattern[str] | None:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 == len(pattern):
                return None
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            parsed = _go_class(pattern, i + 1)
            if parsed is None:
                return None
            text, i = parsed
            out.append(text)
            continue
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _go_class(pattern: str, i: int) -> tuple[str, int] | None:
    """A ``[...]`` class starting after ``[``: (regex, index after ``]``) or None if malformed."""
    negate = i < len(pattern) and pattern[i] == "^"
    i += negate
    ranges: list[str] = []

    def char_at(j: int) -> tuple[str, int] | None:
        if j >= len(pattern) or pattern[j] in "-]":
            return None
        if pattern[j] == "\\":
            return (pattern[j + 1], j + 2) if j + 1 < len(pattern) else None
        return pattern[j], j + 1

    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            break
        low = char_at(i)
        if low is None:
            return None
        lo, i = low
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            high = char_at(i + 1)
            if high is None:
                return None
            hi, i = high
        if lo > hi:
            return None
        ranges.append(f"{re.escape(lo)}-{re.escape(hi)}")
    return ("[^" if negate else "[") + "".join(ranges) + "]", i + 1

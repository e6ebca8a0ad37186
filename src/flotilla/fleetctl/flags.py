"""fleetctl's command line as Go reads it: ``--flag=value``, ``--flag value``, ``-flag value`` and
``-flag=value`` alike; a bool flag takes no separate value (``--full`` or ``--full=false``); global flags
may come before or after the command; every global flag may also come from ``FLEETCTL_<FLAG>`` (dashes
become underscores) when the command line leaves it unset; a unique prefix names a command (cobra's
prefix matching); ``--`` ends the flags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GLOBAL_FLAGS", "FlagSpec", "Invocation", "UsageError", "parse_command_line", "parse_go_bool"]

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class UsageError(Exception):
    """The command line cannot be read (exit 2)."""


@dataclass(frozen=True)
class FlagSpec:
    """One flag: its kind (bool, str, int or float), default and help line; ``alias_of`` for a short
    spelling such as ``-l`` for ``--full``."""

    kind: type
    default: Any = None
    help: str = ""
    alias_of: str = ""


GLOBAL_FLAGS: dict[str, FlagSpec] = {
    "debug": FlagSpec(bool, False, "Print out more debug information to stderr"),
    "version": FlagSpec(bool, False, "Print the version and exit"),
    "help": FlagSpec(bool, False, "Print usage information and exit"),
    "h": FlagSpec(bool, alias_of="help"),
    "driver": FlagSpec(str, "API", 'Adapter used to execute fleetctl commands: "API" or "etcd"'),
    "endpoint": FlagSpec(
        str, "unix:///var/run/fleet.sock",
        "Location of the fleet API (--driver=API) or of etcd (--driver=etcd)",
    ),
    "etcd-key-prefix": FlagSpec(str, "/_coreos.com/fleet/", "Keyspace for fleet data in etcd"),
    "request-timeout": FlagSpec(float, 3.0, "Seconds to allow a single request before considering it failed"),
    "key-file": FlagSpec(str, "", "TLS key file for the fleet API or etcd"),
    "cert-file": FlagSpec(str, "", "TLS certificate file for the fleet API or etcd"),
    "ca-file": FlagSpec(str, "", "TLS CA file for the fleet API or etcd"),
    # Accepted so scripts written for fleet keep working; Flotilla has no SSH transport (see `ssh`).
    "tunnel": FlagSpec(str, "", "Not supported: Flotilla reaches machines only locally"),
    "ssh-username": FlagSpec(str, "core", "Ignored: Flotilla has no SSH transport"),
    "ssh-timeout": FlagSpec(float, 10.0, "Ignored: Flotilla has no SSH transport"),
    "known-hosts-file": FlagSpec(str, "~/.fleetctl/known_hosts", "Ignored: Flotilla has no SSH transport"),
    "strict-host-key-checking": FlagSpec(bool, True, "Ignored: Flotilla has no SSH transport"),
    "experimental-api": FlagSpec(bool, True, "DEPRECATED: do not use this flag."),
}  # fmt: skip


@dataclass
class Invocation:
    """What the command line asks for. ``global_flags`` and ``flags`` hold every flag with its default
    filled in; ``explicit`` names the global flags the user set (on the line or in the environment)."""

    command: str | None
    args: list[str]
    global_flags: dict[str, Any]
    flags: dict[str, Any]
    explicit: set[str] = field(default_factory=set)


def parse_go_bool(text: str, where: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f'invalid argument "{text}" for {where}: use true or false')


def _convert(spec: FlagSpec, text: str, where: str) -> Any:
    if spec.kind is bool:
        return parse_go_bool(text, where)
    try:
        return spec.kind(text)
    except ValueError:
        kind = {int: "an integer", float: "a number"}.get(spec.kind, spec.kind.__name__)
        raise UsageError(f'invalid argument "{text}" for {where}: expected {kind}') from None


def _resolve(name: str, specs: Mapping[str, FlagSpec]) -> tuple[str, FlagSpec] | None:
    spec = specs.get(name)
    if spec is None:
        return None
    return (spec.alias_of, specs[spec.alias_of]) if spec.alias_of else (name, spec)


def _match_command(word: str, commands: Sequence[str]) -> str:
    if word in commands:
        return word
    matches = [c for c in commands if c.startswith(word)]
    if len(matches) == 1:
        return matches[0]
    raise UsageError(f'unknown command "{word}" for "fleetctl"; run `fleetctl help` for the list')


def parse_command_line(
    argv: Sequence[str],
    env: Mapping[str, str],
    command_flags: Mapping[str, Mapping[str, FlagSpec]],
    stop_after_first_arg: Sequence[str] = (),
) -> Invocation:
    """Read ``argv`` (without the program name). ``command_flags`` maps each command to its own flags;
    commands in ``stop_after_first_arg`` take everything after their first argument verbatim (``ssh``'s
    remote command)."""
    global_values: dict[str, Any] = {}
    values: dict[str, Any] = {}
    command: str | None = None
    args: list[str] = []
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "--":
            args.extend(tokens[i:])
            break
        if not token.startswith("-") or token == "-":
            if command is None:
                command = _match_command(token, list(command_flags))
            else:
                args.append(token)
                if command in stop_after_first_arg:
                    args.extend(tokens[i:])
                    break
            continue
        name, has_value, value = token.lstrip("-").partition("=")
        local = command_flags.get(command, {}) if command else {}
        found = _resolve(name, local) or _resolve(name, GLOBAL_FLAGS)
        if found is None:
            where = f" for fleetctl {command}" if command else ""
            raise UsageError(f"unknown flag: {token.partition('=')[0]}{where}")
        canonical, spec = found
        target = values if _resolve(name, local) else global_values
        if spec.kind is bool and not has_value:
            target[canonical] = True
            continue
        if not has_value:
            if i >= len(tokens):
                raise UsageError(f"flag needs an argument: {token}")
            value = tokens[i]
            i += 1
        target[canonical] = _convert(spec, value, f"--{canonical}")
    explicit = set(global_values)
    for name, spec in GLOBAL_FLAGS.items():
        key = "FLEETCTL_" + name.upper().replace("-", "_")
        if name not in global_values and not spec.alias_of and env.get(key):
            global_values[name] = _convert(spec, env[key], key)
            explicit.add(name)
    global_flags = {n: s.default for n, s in GLOBAL_FLAGS.items() if not s.alias_of} | global_values
    local_specs = command_flags.get(command, {}) if command else {}
    flags = {n: s.default for n, s in local_specs.items() if not s.alias_of} | values
    return Invocation(command, args, global_flags, flags, explicit)

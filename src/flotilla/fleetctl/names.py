"""Unit names as fleetctl reads its arguments: a path's last element, ``.service`` when no unit type is
given, templates and instances, and fleet's API name check (api/units.go ValidateName) with its words."""

from __future__ import annotations

from flotilla.units import UNIT_SUFFIXES

__all__ = [
    "go_path_base",
    "maybe_append_default_unit_type",
    "template_of",
    "unit_name_mangle",
    "validate_name",
]

_UNIT_NAME_MAX = 256
_VALID_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:-_.\\@")
_TEMPLATE_TYPES = frozenset({"path", "service", "socket", "target", "timer"})


def go_path_base(path: str) -> str:
    """Go's path.Base: the last element, trailing slashes dropped; "." for an empty path."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    return stripped.rsplit("/", 1)[-1]


def maybe_append_default_unit_type(arg: str) -> str:
    # fleet recognises fewer unit types here than it accepts (foo.target became foo.target.service);
    # every type fleet accepts is recognised, so a valid name is never changed.
    suffix = arg.rpartition(".")[2] if "." in go_path_base(arg) else ""
    return arg if suffix in UNIT_SUFFIXES else arg + ".service"


def unit_name_mangle(arg: str) -> str:
    """The unit an argument names: ``units/foo`` -> ``foo.service``."""
    return maybe_append_default_unit_type(go_path_base(arg))


def template_of(name: str) -> str | None:
    """``foo@.service`` for an instance ``foo@bar.service``; None for anything else."""
    stem, dot, suffix = name.rpartition(".")
    prefix, at, instance = stem.partition("@")
    if not dot or not at or not prefix or not instance:
        return None
    return f"{prefix}@.{suffix}"


def validate_name(name: str) -> str | None:
    """fleet's reason why ``name`` is not a valid unit name, or None."""
    if not name:
        return "unit name cannot be empty"
    if len(name.encode()) > _UNIT_NAME_MAX:
        return f"unit name exceeds maximum length ({_UNIT_NAME_MAX})"
    dot = name.rfind(".")
    if dot == -1:
        return 'unit name must contain "."'
    if dot == len(name) - 1:
        return 'unit name cannot end in "."'
    suffix = name[dot + 1 :]
    if suffix not in UNIT_SUFFIXES:
        return f'invalid unit type: "{suffix}"'
    if "@" in name and suffix not in _TEMPLATE_TYPES:
        return f'invalid unit type for template: "{suffix}"'
    for char in name[:dot]:
        if char not in _VALID_CHARS:
            return f"invalid character '{char}' in unit name"
    if name.startswith("@"):
        return 'unit name cannot start in "@"'
    return None

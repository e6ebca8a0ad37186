"""Unit names: validation as fleet's API does it (after systemd's ``unit_name_is_valid``), templates and
instances (``foo@.service`` / ``foo@bar.service``), and systemd's name unescaping for ``%I``/``%P``."""

from __future__ import annotations

import string
from dataclasses import dataclass

from .errors import UnitNameError

UNIT_NAME_MAX = 256
UNIT_SUFFIXES = frozenset(
    {
        "automount",
        "busname",
        "device",
        "mount",
        "path",
        "scope",
        "service",
        "slice",
        "snapshot",
        "socket",
        "swap",
        "target",
        "timer",
    }
)
TEMPLATE_SUFFIXES = frozenset({"path", "service", "socket", "target", "timer"})
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + ":_.@\\-")


@dataclass(frozen=True)
class UnitName:
    """A valid unit name split at ``@`` and the last ``.``: ``prefix[@instance].suffix``.

    ``instance`` is None for a plain name, ``""`` for a template and the text after ``@`` for an instance.
    """

    prefix: str
    instance: str | None
    suffix: str

    @property
    def name(self) -> str:
        if self.instance is None:
            return f"{self.prefix}.{self.suffix}"
        return f"{self.prefix}@{self.instance}.{self.suffix}"

    @property
    def name_without_suffix(self) -> str:
        return self.name[: -(len(self.suffix) + 1)]

    @property
    def is_template(self) -> bool:
        return self.instance == ""

    @property
    def is_instance(self) -> bool:
        return bool(self.instance)

    @property
    def template(self) -> str | None:
        """The template an instance is made from (``foo@.service`` for ``foo@bar.service``), else None."""
        if not self.is_instance:
            return None
        return f"{self.prefix}@.{self.suffix}"

    def with_instance(self, instance: str) -> UnitName:
        """The instance ``prefix@instance.suffix`` of this template (or of this instance's template)."""
        if self.instance is None:
            raise UnitNameError(
                f"{self.name} is not a template; only foo@.{self.suffix} names take instances"
            )
        return parse_unit_name(f"{self.prefix}@{instance}.{self.suffix}")

    def __str__(self) -> str:
        return self.name


def parse_unit_name(name: str) -> UnitName:
    """Validate ``name`` with fleet's rules (api/units.go ValidateName) and split it; UnitNameError if bad."""
    if not name:
        raise UnitNameError("unit name cannot be empty")
    if len(name) > UNIT_NAME_MAX:
        raise UnitNameError(f"unit name {name[:40]!r}... exceeds maximum length ({UNIT_NAME_MAX})")
    dot = name.rfind(".")
    if dot == -1:
        raise UnitNameError(f'unit name {name!r} must contain "." followed by a type such as .service')
    suffix = name[dot + 1 :]
    if suffix not in UNIT_SUFFIXES:
        allowed = ", ".join(sorted(UNIT_SUFFIXES))
        raise UnitNameError(f"invalid unit type {suffix!r} in {name!r}; allowed: {allowed}")
    stem = name[:dot]
    bad = next((ch for ch in stem if ch not in _NAME_CHARS), None)
    if bad is not None:
        raise UnitNameError(
            f"invalid character {bad!r} in unit name {name!r}; allowed are letters, digits and :_.@\\-"
            " (escape others with systemd-escape)"
        )
    if name.startswith("@"):
        raise UnitNameError(f'unit name {name!r} cannot start with "@"')
    if not stem:
        raise UnitNameError(f"unit name {name!r} has nothing before its type suffix")
    if "@" not in stem:
        return UnitName(stem, None, suffix)
    if suffix not in TEMPLATE_SUFFIXES:
        allowed = ", ".join(sorted(TEMPLATE_SUFFIXES))
        raise UnitNameError(
            f"invalid unit type for template {suffix!r} in {name!r}; templates can be: {allowed}"
        )
    prefix, _, instance = stem.partition("@")
    if "@" in instance:
        raise UnitNameError(f'unit name {name!r} has more than one "@"')
    return UnitName(prefix, instance, suffix)


def unescape_name(s: str) -> str:
    """systemd's ``unit_name_unescape``: ``-`` is ``/`` and ``\\xNN`` is the byte NN (UTF-8 decoded).

    Used for ``%I``, ``%P`` and ``%J``; a bad escape is a UnitNameError as in systemd.
    """
    out = bytearray()
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "-":
            out += b"/"
            i += 1
        elif ch == "\\":
            digits = s[i + 2 : i + 4]
            if s[i + 1 : i + 2] != "x" or len(digits) != 2 or not all(d in string.hexdigits for d in digits):
                raise UnitNameError(f"bad escape in {s!r} at offset {i}; systemd escapes are \\xNN")
            out.append(int(digits, 16))
            i += 4
        else:
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnitNameError(f"{s!r} unescapes to bytes that are not UTF-8 ({exc.reason})") from None


def escape_name(s: str) -> str:
    """systemd-escape (without --path): ``/`` becomes ``-``, unsafe bytes ``\\xNN``, a leading ``.`` too."""
    out: list[str] = []
    for index, byte in enumerate(s.encode("utf-8")):
        ch = chr(byte)
        if ch == "/":
            out.append("-")
        elif (ch == "." and index == 0) or ch not in _ESCAPE_SAFE:
            out.append(f"\\x{byte:02x}")
        else:
            out.append(ch)
    return "".join(out)


# systemd's VALID_CHARS minus the ones escape keeps for itself ('-' and '\\' must be escaped).
_ESCAPE_SAFE = frozenset(string.ascii_letters + string.digits + ":_.")

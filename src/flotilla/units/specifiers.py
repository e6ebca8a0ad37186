"""systemd's ``%`` specifiers in unit-file values (``unit_full_printf``).

``%N`` follows newer systemd (v236 and later) and fleet's code: the name without its type suffix
(``foo@bar`` for ``foo@bar.service``), not the unescaped full name older man pages describe. An unknown
specifier is an error (systemd >= 236 refuses the setting; older versions kept it literally) so a typo is
found at load time. A ``%`` at the very end of a value stays a literal ``%``, as in systemd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import UnitFileError, UnitNameError
from .names import UnitName, parse_unit_name, unescape_name


@dataclass(frozen=True)
class SpecifierContext:
    """What specifiers expand to for one unit on one machine (defaults: a system manager run as root)."""

    unit_name: str
    hostname: str = "localhost"
    machine_id: str = "0" * 32
    boot_id: str = "0" * 32
    user: str = "root"
    uid: int = 0
    home: str = "/root"
    shell: str = "/bin/sh"
    runtime_dir: str = "/run"


def _split_name(name: str) -> UnitName:
    try:
        return parse_unit_name(name)
    except UnitNameError:
        # Expansion must not fail on a name validated elsewhere; split it the lenient way fleet does.
        stem, _, suffix = name.rpartition(".") if "." in name else (name, "", "")
        prefix, at, instance = stem.partition("@")
        return UnitName(prefix, instance if at else None, suffix)


def _unescape_path(text: str) -> str:
    # %f: the unescaped instance (or prefix) as an absolute path.
    unescaped = unescape_name(text)
    return unescaped if unescaped.startswith("/") else "/" + unescaped


def _table(ctx: SpecifierContext) -> dict[str, Callable[[], str]]:
    name = _split_name(ctx.unit_name)
    last_dash = name.prefix.rsplit("-", 1)[-1]
    return {
        "n": lambda: name.name,
        "N": lambda: name.name_without_suffix,
        "p": lambda: name.prefix,
        "P": lambda: unescape_name(name.prefix),
        "i": lambda: name.instance or "",
        "I": lambda: unescape_name(name.instance or ""),
        "j": lambda: last_dash,
        "J": lambda: unescape_name(last_dash),
        "f": lambda: _unescape_path(name.instance or name.prefix),
        "H": lambda: ctx.hostname,
        "l": lambda: ctx.hostname.split(".", 1)[0],
        "m": lambda: ctx.machine_id,
        "b": lambda: ctx.boot_id,
        "u": lambda: ctx.user,
        "U": lambda: str(ctx.uid),
        "g": lambda: "root" if ctx.uid == 0 else ctx.user,
        "G": lambda: str(ctx.uid),
        "h": lambda: ctx.home,
        "s": lambda: ctx.shell,
        "t": lambda: ctx.runtime_dir,
        "T": lambda: "/tmp",
        "V": lambda: "/var/tmp",
        "S": lambda: "/var/lib",
        "C": lambda: "/var/cache",
        "L": lambda: "/var/log",
        "E": lambda: "/etc",
    }


KNOWN_SPECIFIERS = frozenset(_table(SpecifierContext("x.service"))) | {"%"}


def expand_specifiers(text: str, ctx: SpecifierContext, path: str = "<unit>", line: int | None = None) -> str:
    """``text`` with every ``%x`` replaced for ``ctx``; UnitFileError (file:line) on an unknown one."""
    if "%" not in text:
        return text
    table = _table(ctx)
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "%" or i + 1 == len(text):
            out.append(ch)
            i += 1
            continue
        spec = text[i + 1]
        i += 2
        if spec == "%":
            out.append("%")
            continue
        resolve = table.get(spec)
        if resolve is None:
            known = " ".join(f"%{s}" for s in sorted(KNOWN_SPECIFIERS))
            raise UnitFileError(
                path,
                line,
                f"unknown specifier %{spec} in {text!r}; known: {known} (write %% for a literal %)",
            )
        try:
            out.append(resolve())
        except UnitNameError as exc:
            raise UnitFileError(path, line, f"cannot expand %{spec} in {text!r}: {exc}") from None
    return "".join(out)

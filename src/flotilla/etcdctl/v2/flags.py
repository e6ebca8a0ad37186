"""Command-line flags the way etcdctl 3.4's v2 verbs read them: Go's ``flag`` package (``-ttl 5``,
``--ttl 5``, ``--ttl=5``; a bool takes no separate value; the last of a repeated flag wins) behind
urfave/cli 1.22 (a verb's flags may follow its arguments: they are moved first; aliases such as
``-o``/``--output`` share one value and may not both be given). Errors carry Go's exact wording."""

from __future__ import annotations

import re

from flotilla.gotext import go_quote, parse_go_duration

__all__ = ["Flag", "FlagError", "help_line", "parse", "parse_duration", "reorder"]


class FlagError(Exception):
    """A command line the flag package refuses; ``str()`` is Go's message."""


class Flag:
    """One flag: ``names`` as urfave writes them (``"output, o"``), a kind (bool, string, int,
    duration) and the default value (None: the kind's zero)."""

    def __init__(self, names: str, kind: str, usage: str, default: object = None) -> None:
        self.names, self.kind, self.usage, self.default = names, kind, usage, default

    @property
    def aliases(self) -> list[str]:
        return [name.strip() for name in self.names.split(",")]

    @property
    def key(self) -> str:
        return self.aliases[0]

    def zero(self) -> object:
        if self.default is not None:
            return self.default
        return {"bool": False, "string": "", "int": 0, "duration": 0.0}[self.kind]


def help_line(flag: Flag) -> str:
    """The option's help line (``--ttl value\\tkey time-to-live ... (default: 0)``), urfave's format."""
    placeholder, usage = _unquote_usage(flag.usage)
    default_text = ""
    if flag.kind != "bool":
        placeholder = placeholder or "value"
        if flag.kind == "string":
            default_text = f' (default: "{flag.default}")' if flag.default else ""
        elif flag.kind == "int":
            default_text = f" (default: {flag.zero()})"
        else:
            default_text = f" (default: {_format_duration(float(flag.zero()))})"
    names = ", ".join(
        ("-" if len(name) == 1 else "--") + name + (f" {placeholder}" if placeholder else "")
        for name in flag.aliases
    )
    return f"{names}\t{(usage + default_text).strip()}"


def _unquote_usage(usage: str) -> tuple[str, str]:
    # The first `quoted` word names the placeholder and loses its backquotes (urfave's unquoteUsage).
    start = usage.find("`")
    end = usage.find("`", start + 1) if start >= 0 else -1
    if start < 0 or end < 0:
        return "", usage
    name = usage[start + 1 : end]
    return name, usage[:start] + name + usage[end + 1 :]


def _format_duration(seconds: float) -> str:
    # Only the defaults etcdctl declares are printed: whole seconds.
    return f"{int(seconds)}s"


def reorder(flags: list[Flag], args: list[str]) -> list[str]:
    """urfave/cli 1.22's reorderArgs: known flags (and the word after a flag without ``=``) move before
    the other arguments; a ``--`` that is not a flag's value ends the reordering and leads the rest."""
    known = {alias for flag in flags for alias in flag.aliases}

    def is_flag(arg: str) -> bool:
        if arg in ("-", "--") or not arg.startswith("-"):
            return False
        name = arg[2:] if arg.startswith("--") else arg[1:]
        return name.split("=")[0] in known

    moved: list[str] = []
    rest: list[str] = []
    next_may_be_value = False
    for i, arg in enumerate(args):
        if next_may_be_value and not is_flag(arg):
            next_may_be_value = False
            moved.append(arg)
        elif arg == "--":
            rest = ["--", *rest, *args[i + 1 :]]
            break
        elif is_flag(arg):
            moved.append(arg)
            next_may_be_value = "=" not in arg
        else:
            rest.append(arg)
    return moved + rest


def parse(flags: list[Flag], args: list[str]) -> tuple[dict[str, object], list[str]]:
    """Go's ``FlagSet.Parse`` then urfave's normalizeFlags: the values by each flag's first name and
    the remaining positional arguments. Raises FlagError with Go's message."""
    by_alias = {alias: flag for flag in flags for alias in flag.aliases}
    given: dict[str, object] = {}
    args = list(args)
    error: FlagError | None = None
    while args:
        arg = args[0]
        if len(arg) < 2 or arg[0] != "-":
            break
        dashes = 2 if arg[1] == "-" else 1
        if arg == "--":
            args.pop(0)
            break
        name = arg[dashes:]
        if not name or name[0] in "-=":
            error = FlagError(f"bad flag syntax: {arg}")
            break
        args.pop(0)
        value: str | None = None
        if "=" in name[1:]:
            cut = name.index("=", 1)
            name, value = name[:cut], name[cut + 1 :]
        flag = by_alias.get(name)
        if flag is None:
            error = FlagError(f"flag provided but not defined: -{name}")
            break
        if flag.kind != "bool" and value is None:
            if not args:
                error = FlagError(f"flag needs an argument: -{name}")
                break
            value = args.pop(0)
        try:
            given[name] = _convert(flag.kind, value)
        except ValueError as exc:
            quoted = go_quote(value or "")
            if flag.kind == "bool":
                error = FlagError(f"invalid boolean value {quoted} for -{name}: {exc}")
            else:
                error = FlagError(f"invalid value {quoted} for flag -{name}: {exc}")
            break
    if error is not None:
        raise error
    return _normalize(flags, given), args


def _normalize(flags: list[Flag], given: dict[str, object]) -> dict[str, object]:
    values: dict[str, object] = {}
    for flag in flags:
        seen = [alias for alias in flag.aliases if alias in given]
        if len(seen) > 1:
            raise FlagError(f"Cannot use two forms of the same flag: {seen[1]} {seen[0]}")
        values[flag.key] = given[seen[0]] if seen else flag.zero()
    return values


def _convert(kind: str, value: str | None) -> object:
    if kind == "bool":
        return True if value is None else _parse_bool(value)
    assert value is not None
    if kind == "int":
        return _parse_int(value)
    if kind == "duration":
        return parse_duration(value)
    return value


def _parse_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError("parse error")


_INT = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)")


def _parse_int(text: str) -> int:
    # strconv.ParseInt(s, 0, 64): base prefixes, a bare leading 0 means octal.
    if not _INT.fullmatch(text) or "__" in text or text.endswith("_"):
        raise ValueError("parse error")
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if len(body) > 1 and body[0] == "0" and body[1] not in "xXoObB":
        body = "0o" + body[1:]
    number = sign * int(body, 0)
    if not -(2**63) <= number < 2**63:
        raise ValueError("value out of range")
    return number


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds; ValueError("parse error") as the flag package reports it."""
    try:
        return parse_go_duration(text)
    except ValueError:
        raise ValueError("parse error") from None

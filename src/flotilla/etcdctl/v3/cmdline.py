"""The command line as etcdctl 3.4 parses it: cobra's command tree (prefix matching, help, usage text)
over pflag's flags (``--f v``, ``--f=v``, ``-w v``, ``-wv``, bools without a value, ``--`` ends flags,
flags anywhere among the arguments) and etcd's ``ETCDCTL_*`` environment variables."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field

from flotilla.etcdctl.v3.textfmt import tabwrite
from flotilla.gotext import go_duration, parse_go_duration

VERSION = "3.4.23"
API_VERSION = "3.4"


class UsageError(Exception):
    """A command line pflag or cobra refuses; the text is theirs."""


@dataclass
class Flag:
    """One flag; ``kind`` is bool, string, int64, duration or strings (a comma-separated list)."""

    name: str
    kind: str
    default: object
    usage: str
    shorthand: str = ""
    value: object = None
    changed: bool = False

    def __post_init__(self) -> None:
        self.value = list(self.default) if isinstance(self.default, list) else self.default

    def set(self, text: str) -> None:
        """pflag's Value.Set: parse ``text``; the error text is pflag's (without the flag name)."""
        if self.kind == "bool":
            self.value = parse_bool(text)
        elif self.kind == "int64":
            self.value = parse_int(text)
        elif self.kind == "duration":
            self.value = parse_go_duration(text)
        elif self.kind == "strings":
            items = next(csv.reader([text])) if text else []
            self.value = items if not self.changed else [*self.value, *items]
        else:
            self.value = text
        self.changed = True

    def default_text(self) -> str:
        if self.kind == "strings":
            return "[" + ",".join(self.default) + "]"
        if self.kind == "bool":
            return "true" if self.default else "false"
        if self.kind == "duration":
            return go_duration(self.default)
        return str(self.default)


def parse_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def parse_int(text: str, base: int = 10, bits: int = 64) -> int:
    """strconv.ParseInt(text, base, bits) with Go's error text."""
    body = text[1:] if text[:1] in "+-" else text
    digits = "0123456789abcdef"[:base]
    if base == 0 or not body or any(c not in digits for c in body.lower()) or "_" in body:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text, base)
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if not low <= value <= high:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def parse_uint(text: str, base: int = 10) -> int:
    """strconv.ParseUint(text, base, 64) with Go's error text."""
    digits = "0123456789abcdef"[:base]
    if not text or any(c not in digits for c in text.lower()):
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text, base)
    if value >= 2**64:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


@dataclass
class Command:
    """A cobra command: ``run(ctx, args)`` or subcommands; ``flags`` are local, ``persistent`` inherited."""

    use: str
    short: str
    run: Callable | None = None
    long: str = ""
    flags: list[Flag] = field(default_factory=list)
    persistent: list[Flag] = field(default_factory=list)
    children: list[Command] = field(default_factory=list)
    parent: Command | None = None
    help_flag: Flag | None = None

    def __post_init__(self) -> None:
        self.help_flag = Flag("help", "bool", False, f"help for {self.name}", "h")

    @property
    def name(self) -> str:
        return self.use.split(" ", 1)[0]

    def add(self, *children: Command) -> Command:
        for child in children:
            child.parent = self
            self.children.append(child)
        return self

    def path(self) -> str:
        return self.name if self.parent is None else f"{self.parent.path()} {self.name}"

    def inherited(self) -> list[Flag]:
        flags: list[Flag] = []
        node = self.parent
        while node is not None:
            flags.extend(node.persistent)
            node = node.parent
        return flags

    def local(self) -> list[Flag]:
        return [*self.flags, *self.persistent, self.help_flag]

    def lookup(self, name: str) -> Flag | None:
        for flag in [*self.local(), *self.inherited()]:
            if flag.name == name:
                return flag
        return None

    def flag(self, name: str):
        found = self.lookup(name)
        assert found is not None, name
        return found.value


def find(root: Command, args: list[str]) -> tuple[Command, list[str]]:
    """cobra's Find: walk the tree by the non-flag words (unique prefixes allowed); the rest are args."""
    node, rest = root, list(args)
    while True:
        words = _strip_flags(rest, node)
        if not words:
            return node, rest
        child = _child(node, words[0])
        if child is None:
            return node, rest
        rest.remove(words[0])
        node = child


def _child(node: Command, word: str) -> Command | None:
    for child in node.children:
        if child.name == word:
            return child
    matches = [c for c in node.children if c.name.startswith(word)]
    return matches[0] if len(matches) == 1 else None


def _strip_flags(args: list[str], node: Command) -> list[str]:
    words, i = [], 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--") and "=" not in arg:
            flag = node.lookup(arg[2:])
            if flag is None or flag.kind != "bool":
                i += 1
        elif arg.startswith("-") and len(arg) == 2 and arg != "-":
            flag = _by_shorthand(node, arg[1])
            if flag is None or flag.kind != "bool":
                i += 1
        elif not arg.startswith("-") or arg == "-":
            words.append(arg)
    return words


def _by_shorthand(node: Command, letter: str) -> Flag | None:
    for flag in [*node.local(), *node.inherited()]:
        if flag.shorthand == letter:
            return flag
    return None


def parse_flags(node: Command, args: list[str]) -> list[str]:
    """pflag's Parse with interspersed arguments; returns the positional arguments."""
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional.extend(args[i:])
            break
        if arg.startswith("--") and len(arg) > 2:
            i = _long(node, arg[2:], args, i)
        elif arg.startswith("-") and len(arg) > 1:
            i = _shorts(node, arg[1:], args, i)
        else:
            positional.append(arg)
    return positional


def _long(node: Command, body: str, args: list[str], i: int) -> int:
    name, has_value, value = body.partition("=")
    flag = node.lookup(name)
    if flag is None:
        raise UsageError(f"unknown flag: --{name}")
    if not has_value:
        if flag.kind == "bool":
            value = "true"
        elif i < len(args):
            value, i = args[i], i + 1
        else:
            raise UsageError(f"flag needs an argument: --{name}")
    _set(flag, value, f"--{name}")
    return i


def _shorts(node: Command, letters: str, args: list[str], i: int) -> int:
    while letters:
        letter, letters = letters[0], letters[1:]
        flag = _by_shorthand(node, letter)
        if flag is None:
            raise UsageError(f"unknown shorthand flag: '{letter}' in -{letter}{letters}")
        if letters.startswith("="):
            value, letters = letters[1:], ""
        elif flag.kind == "bool":
            value = "true"
        elif letters:
            value, letters = letters, ""
        elif i < len(args):
            value, i = args[i], i + 1
        else:
            raise UsageError(f"flag needs an argument: '{letter}' in -{letter}")
        _set(flag, value, f"-{flag.shorthand}, --{flag.name}")
    return i


def _set(flag: Flag, value: str, shown: str) -> None:
    try:
        flag.set(value)
    except ValueError as e:
        raise UsageError(f'invalid argument "{value}" for "{shown}" flag: {e}') from None


def usage(node: Command) -> str:
    """etcdctl's usage template (ctlv3/help.go) through Go's tabwriter."""
    parts = ["NAME:\n"]
    name = node.name if node.parent is None else _name_under(node, root_of(node))
    parts.append(f"\t{name} - {node.short}\n\nUSAGE:\n\t{_use_line(node)}\n")
    if node.parent is None:
        parts.append(f"\nVERSION:\n\t{VERSION}\n")
    if node.children:
        parts.append(f"\nAPI VERSION:\n\t{API_VERSION}\n\n\nCOMMANDS:\n")
        for sub in _descendants(node):
            if sub.run is not None:
                parts.append(f"\t{_name_under(sub, node)}\t{sub.short}\n")
    if node.long:
        parts.append("\nDESCRIPTION:\n")
        parts.extend(f"\t{line}\n" for line in node.long.strip("\n\t ").split("\n"))
    parts.append("\nOPTIONS:\n" + _flag_lines(sorted(node.local(), key=lambda f: f.name)))
    inherited = sorted(node.inherited(), key=lambda f: f.name)
    if inherited:
        parts.append("\nGLOBAL OPTIONS:\n" + _flag_lines(inherited))
    parts.append("\n")
    return tabwrite("".join(parts))


def root_of(node: Command) -> Command:
    while node.parent is not None:
        node = node.parent
    return node


def _name_under(node: Command, start: Command) -> str:
    parts = [node.name]
    while node.parent is not None and node.parent.name != start.name:
        node = node.parent
        parts.insert(0, node.name)
    return " ".join(parts)


def _use_line(node: Command) -> str:
    line = node.use if node.parent is None else f"{node.parent.path()} {node.use}"
    return line if "[flags]" in line else line + " [flags]"


def _descendants(node: Command) -> list[Command]:
    found = []
    for child in sorted(node.children, key=lambda c: c.name):
        found.append(child)
        found.extend(_descendants(child))
    return found


def _flag_lines(flags: list[Flag]) -> str:
    lines = []
    for flag in flags:
        head = f"  -{flag.shorthand}, --{flag.name}" if flag.shorthand else f"      --{flag.name}"
        default = flag.default_text()
        if flag.kind == "string":
            default = '"' + default.replace("\\", "\\\\").replace('"', '\\"') + '"'
        shown = f"[={default}]" if flag.kind == "bool" else f"={default}"
        lines.append(f"{head}{shown}\t{flag.usage}\n")
    return "".join(lines)


def env_name(flag_name: str) -> str:
    return "ETCDCTL_" + flag_name.upper().replace("-", "_")

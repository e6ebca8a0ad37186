"""A unit file as an ordered list of options, parsed the way systemd reads it.

The list keeps file order, repeated keys and empty assignments because fleet's API and hash work on that
list (``[{section, name, value}]``), and because systemd's meaning of an option depends on what came
before it: the last value wins for single-valued settings, and an empty assignment resets list settings.

Parsing follows systemd's ``config_parse`` (src/shared/conf-parser.c, v240 and later):

* a line whose first non-blank character is ``#`` or ``;`` is a comment, also in the middle of a
  continuation (those lines are skipped, the continuation goes on);
* a line ending in an odd number of backslashes continues on the next line; the final backslash becomes a
  space and the next line is appended as it is (a blank line ends the continuation);
* ``[Name]`` opens a section; a line starting with ``[`` that does not end in ``]`` is an error;
* ``Key=Value`` with blanks around both stripped; a UTF-8 byte-order mark at the start is ignored.

Where systemd only warns and ignores (an assignment outside any section, a line without ``=``) this parser
raises ``UnitFileError`` instead, because Flotilla refuses a unit at submission rather than running half of
it. Line numbers are the first physical line of an option (systemd reports the last one of a
continuation; the first is where a person starts reading).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import UnitFileError

# systemd's WHITESPACE: str.strip() would also remove form feeds and Unicode spaces, which systemd keeps.
_BLANKS = " \t\n\r"
_COMMENTS = "#;"
_BOM = "\ufeff"


@dataclass(frozen=True)
class Option:
    """One ``Name=Value`` line of a section; ``line`` is its first line in the file, when known."""

    section: str
    name: str
    value: str
    line: int | None = None


class UnitFile:
    """The options of one unit file (or a unit with its drop-ins), in order. Treat as immutable."""

    __slots__ = ("options", "path")

    def __init__(self, options: Iterable[Option] = (), path: str = "<unit>") -> None:
        self.options: list[Option] = list(options)
        self.path = path

    @classmethod
    def from_options(cls, options: Iterable[Option], path: str = "<unit>") -> UnitFile:
        """A unit from options given as data (fleet's API sends them this way, without line numbers)."""
        return cls(options, path)

    def __eq__(self, other: object) -> bool:
        # Equal when fleet would call them the same unit (MatchUnitFiles compares hashes of to_text()):
        # line numbers and path are where, not what, and options of different sections are independent,
        # so only the order within each section (and of first appearance of sections) counts.
        if not isinstance(other, UnitFile):
            return NotImplemented
        return _content(self.options) == _content(other.options)

    def __hash__(self) -> int:
        return hash(tuple(_content(self.options)))

    def __repr__(self) -> str:
        return f"UnitFile(path={self.path!r}, options={self.options!r})"

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.options)

    def sections(self) -> list[str]:
        """Section names in order of first appearance (sections without options are not kept)."""
        seen: dict[str, None] = {}
        for option in self.options:
            seen.setdefault(option.section, None)
        return list(seen)

    def get(self, section: str, name: str, default: str | None = None) -> str | None:
        """The last value of ``section.name`` (systemd's last-wins rule), or ``default`` if absent."""
        option = self.get_option(section, name)
        return default if option is None else option.value

    def get_option(self, section: str, name: str) -> Option | None:
        """The last ``section.name`` option (for its line number), or None."""
        for option in reversed(self.options):
            if option.section == section and option.name == name:
                return option
        return None

    def get_all(self, section: str, name: str) -> list[str]:
        """Values of a list setting in order; an empty assignment drops everything before it."""
        return [option.value for option in self.get_all_options(section, name)]

    def get_all_options(self, section: str, name: str) -> list[Option]:
        """As ``get_all`` but the options themselves, so callers can report their lines."""
        found: list[Option] = []
        for option in self.options:
            if option.section == section and option.name == name:
                if option.value == "":
                    found.clear()
                else:
                    found.append(option)
        return found

    def with_dropins(self, *dropins: UnitFile) -> UnitFile:
        """This unit with drop-in options after its own, as systemd loads ``<unit>.d/*.conf``."""
        options = list(self.options)
        for dropin in dropins:
            options.extend(dropin.options)
        return UnitFile(options, self.path)

    def to_text(self) -> str:
        """go-systemd's ``unit.Serialize``: options grouped by section in first-seen order, one blank
        line between sections, nothing at all for no options. fleet hashes exactly these bytes."""
        grouped: dict[str, list[Option]] = {}
        for option in self.options:
            grouped.setdefault(option.section, []).append(option)
        blocks = []
        for section, options in grouped.items():
            lines = [f"[{section}]\n"] + [f"{o.name}={o.value}\n" for o in options]
            blocks.append("".join(lines))
        return "\n".join(blocks)


def _content(options: Iterable[Option]) -> list[tuple[str, str, str]]:
    grouped: dict[str, list[tuple[str, str, str]]] = {}
    for o in options:
        grouped.setdefault(o.section, []).append((o.section, o.name, o.value))
    return [triple for triples in grouped.values() for triple in triples]


def _physical_lines(text: str) -> list[str]:
    # systemd's read_line() ends a line at \n, \r\n or a lone \r.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _ends_escaped(text: str) -> bool:
    # An odd run of trailing backslashes: the last one escapes the newline (systemd's scan pairs them).
    run = len(text) - len(text.rstrip("\\"))
    return run % 2 == 1


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, joined line) for each logical line, comments and continuations resolved."""
    if text.startswith(_BOM):
        text = text[len(_BOM) :]
    lines = _physical_lines(text)
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another one
    pending: str | None = None
    first = 0
    for number, raw in enumerate(lines, start=1):
        stripped = raw.lstrip(_BLANKS)
        if stripped and stripped[0] in _COMMENTS:
            continue
        if pending is None:
            first, joined = number, raw
        else:
            joined = pending + raw
        if _ends_escaped(joined):
            pending = joined[:-1] + " "
            continue
        pending = None
        yield first, joined
    if pending is not None:
        yield first, pending


def parse_unit_text(text: str, path: str = "<unit>") -> UnitFile:
    """Parse unit-file text as systemd does (see the module docstring); errors name ``path:line``."""
    options: list[Option] = []
    section: str | None = None
    for number, joined in _logical_lines(text):
        line = joined.strip(_BLANKS)
        if not line:
            continue
        if line[0] == "[":
            section = _section_name(line, path, number)
            continue
        if "=" not in line:
            raise UnitFileError(
                path, number, f"missing '=' in {_clip(line)!r}; options are written Name=Value"
            )
        name, _, value = line.partition("=")
        name = name.strip(_BLANKS)
        if section is None:
            raise UnitFileError(
                path, number, f"{name}= appears before any section header; put it under [Unit], [Service]..."
            )
        if not name:
            raise UnitFileError(path, number, f"no option name before '=' in {_clip(line)!r}")
        options.append(Option(section, name, value.strip(_BLANKS), number))
    return UnitFile(options, path)


def _section_name(line: str, path: str, number: int) -> str:
    if len(line) < 2 or line[-1] != "]":
        raise UnitFileError(path, number, f"invalid section header {_clip(line)!r}; write it as [Name]")
    name = line[1:-1]
    # systemd's string_is_safe(): no control characters, quotes or backslashes in a section name.
    if any(ch in "\\\"'" or ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise UnitFileError(path, number, f"bad characters in section header {_clip(line)!r}")
    return name


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""A unit's identity as fleet computes it (unit/unit.go ``UnitFile.Hash``): SHA1 over go-systemd's
``Serialize`` of the options (``UnitFile.to_text``), as 40 lowercase hex digits.

fleetctl builds those options with go-systemd's own parser, which differs from systemd's: a continuation
keeps its backslash and newline inside the value, CRLF leaves the ``\\r`` before a continuation's newline,
and text before the first section is skipped. ``parse_unit_text_fleet`` reproduces that parser so a unit
file read from disk gets the same options, and so the same hash, as fleetctl would give it.
"""

from __future__ import annotations

import hashlib
import unicodedata

from .errors import UnitFileError
from .unitfile import Option, UnitFile

_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0")


def _is_go_space(ch: str) -> bool:
    # Go's unicode.IsSpace: the Latin-1 set above plus the Z categories (not Python's \x1c-\x1f).
    return ch in _GO_SPACE or (ord(ch) > 0xFF and unicodedata.category(ch) in ("Zs", "Zl", "Zp"))


def _go_trim(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_go_space(text[start]):
        start += 1
    while end > start and _is_go_space(text[end - 1]):
        end -= 1
    return text[start:end]


def unit_hash(unit: UnitFile) -> str:
    """fleet's 40-hex SHA1 of ``unit`` (its ``Hash().String()``; ``[:7]`` is the short form)."""
    text = unit.to_text()
    try:
        data = text.encode("utf-8", "surrogateescape")  # the original bytes of a surrogate-escaped file
    except UnicodeEncodeError:
        data = text.encode("utf-8", "surrogatepass")
    return hashlib.sha1(data).hexdigest()


class _GoLexer:
    """go-systemd's unit/deserialize.go lexer (the version vendored by fleet), on a str."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.pos = 0
        self.options: list[Option] = []

    def error(self, message: str, at: int | None = None) -> UnitFileError:
        line = self.text.count("\n", 0, self.pos if at is None else at) + 1
        return UnitFileError(self.path, line, message)

    def to_eol(self) -> tuple[str, bool]:
        """The rest of the line without its ``\\n`` (and a final ``\\r`` only at EOF, as Go trims)."""
        end = self.text.find("\n", self.pos)
        if end == -1:
            line, self.pos = self.text[self.pos :], len(self.text)
            return line.removesuffix("\r"), True
        line, self.pos = self.text[self.pos : end], end + 1
        return line, False

    def ignore_line(self) -> None:
        while True:
            line, _ = self.to_eol()
            if not line.removesuffix(" ").endswith("\\"):
                return

    def section(self) -> str:
        end = self.text.find("]", self.pos)
        if end == -1:
            raise self.error("unable to find end of section")
        name = self.text[self.pos : end]
        self.pos = end + 1
        garbage, _ = self.to_eol()
        if _go_trim(garbage):
            raise self.error(f"found garbage after section name {name}: {garbage!r}", end)
        return name

    def option(self, section: str) -> None:
        start = self.pos
        end = start
        while end < len(self.text) and self.text[end] not in "=\n\r":
            end += 1
        if end == len(self.text):
            raise self.error(
                f"unexpected end of file in option {_go_trim(self.text[start:])!r}: no '='", start
            )
        if self.text[end] != "=":
            raise self.error("unexpected newline encountered while parsing option name", start)
        name = _go_trim(self.text[start:end])
        self.pos = end + 1
        partial: list[str] = []
        while True:
            line, eof = self.to_eol()
            if not _go_trim(line):
                break
            partial.append(line)
            if not line.endswith("\\"):
                break
            if not eof:
                partial.append("\n")
        value = "".join(partial)
        value = _go_trim(value) + "\n" if value.endswith("\n") else _go_trim(value)
        line_number = self.text.count("\n", 0, start) + 1
        self.options.append(Option(section, name, value, line_number))

    def run(self) -> UnitFile:
        section: str | None = None
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "[":
                section = self.section()
            elif ch in "#;":
                self.ignore_line()
            elif section is not None and not _is_go_space(ch):
                self.pos -= 1
                self.option(section)
            # Before the first section anything else is skipped a character at a time, as go-systemd does.
        return UnitFile(self.options, self.path)


def parse_unit_text_fleet(text: str, path: str = "<unit>") -> UnitFile:
    """Options exactly as fleetctl's go-systemd parser reads ``text`` (see the module docstring)."""
    return _GoLexer(text, path).run()

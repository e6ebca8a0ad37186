"""``Environment=`` values and ``EnvironmentFile=`` contents as systemd reads them.

``Environment=`` (``config_parse_environ``): words split like Exec arguments (quotes around a whole
assignment: ``"A=x y" B=z``, C escapes), specifiers expanded, no ``$`` expansion. An invalid assignment
(no ``=``, a bad name, control characters in the value) is skipped; systemd logs it, we return it as a
warning. A syntax error (unterminated quote, bad escape) ends the line: what came before it is kept.

Environment files (``load_env_file``): one ``NAME=value`` per line, ``#``/``;`` comment lines, blanks around
name and unquoted value dropped, ``'...'`` literal, ``"..."`` with ``\\"``, ``\\\\``, ``\\$`` and
`` \\` `` unescaped (other backslashes kept), a backslash-newline joins lines, quotes may span lines.
``export NAME=value`` is not understood (systemd does not either: the name would contain a blank).
"""

from __future__ import annotations

import re

from ._words import WordSyntaxError, extract_word
from .specifiers import SpecifierContext, expand_specifiers

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NEWLINES = "\n\r"
_BLANKS = " \t\n\r"


def _invalid_assignment(name: str, value: str) -> str | None:
    """Why ``name=value`` is not a valid environment assignment for systemd, or None."""
    if not _NAME.fullmatch(name):
        return f"{name!r} is not a valid variable name (letters, digits and _, not starting with a digit)"
    if any((ord(c) < 32 and c not in "\t\n") or ord(c) == 127 for c in value):
        return f"the value of {name} contains control characters"
    return None


def parse_environment_value_with_warnings(
    value: str, path: str = "<unit>", line: int | None = None, specifiers: SpecifierContext | None = None
) -> tuple[list[tuple[str, str]], list[str]]:
    """(assignments in order, warnings ``path:line: ...`` for what systemd would log and ignore)."""
    where = f"{path}:{line}" if line is not None else path
    pairs: list[tuple[str, str]] = []
    warnings: list[str] = []
    pos = 0
    while True:
        try:
            extracted = extract_word(value, pos)
        except WordSyntaxError as exc:
            warnings.append(f"{where}: {exc} in Environment={value!r}; ignoring the rest of the line")
            return pairs, warnings
        if extracted is None:
            return pairs, warnings
        word, pos = extracted
        if specifiers is not None:
            word = expand_specifiers(word, specifiers, path, line)
        name, equals, assigned = word.partition("=")
        problem = "no '=' in it" if not equals else _invalid_assignment(name, assigned)
        if problem:
            warnings.append(f"{where}: invalid environment assignment {word!r} ({problem}), ignoring it")
            continue
        pairs.append((name, assigned))


def parse_environment_value(
    value: str, path: str = "<unit>", line: int | None = None, specifiers: SpecifierContext | None = None
) -> list[tuple[str, str]]:
    """The assignments of one ``Environment=`` value, invalid ones skipped (see the module docstring)."""
    return parse_environment_value_with_warnings(value, path, line, specifiers)[0]


def parse_environment_file(text: str, path: str = "<env>") -> list[tuple[str, str]]:
    """The valid assignments of an environment file, in order (a later one for a name wins)."""
    return parse_environment_file_with_warnings(text, path)[0]


class _EnvFileReader:
    """systemd's env-file state machine (src/basic/env-file.c), one character at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pairs: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.line = 1
        self.key: list[str] = []
        self.value: list[str] = []

    def push(self, key_line: int) -> None:
        name = "".join(self.key).rstrip(_BLANKS)
        value = "".join(self.value)
        problem = _invalid_assignment(name, value)
        if problem:
            self.warnings.append(
                f"{self.path}:{key_line}: invalid environment assignment, ignoring it: {problem}"
            )
        else:
            self.pairs.append((name, value))
        self.key, self.value = [], []


def parse_environment_file_with_warnings(
    text: str, path: str = "<env>"
) -> tuple[list[tuple[str, str]], list[str]]:
    """(assignments, warnings with ``path:line``) of an environment file."""
    reader = _EnvFileReader(path)
    state = "pre_key"
    key_line = 1
    value_end = 0  # length of the unquoted value without its trailing blanks
    for ch in text:
        if state == "pre_key":
            if ch in "#;":
                state = "comment"
            elif ch not in _BLANKS:
                state, key_line = "key", reader.line
                reader.key.append(ch)
        elif state == "key":
            if ch in _NEWLINES:
                reader.warnings.append(f"{path}:{key_line}: no '=' in {''.join(reader.key)!r}, ignoring it")
                reader.key = []
                state = "pre_key"
            elif ch == "=":
                state = "pre_value"
            else:
                reader.key.append(ch)
        elif state == "pre_value":
            if ch in _NEWLINES:
                reader.push(key_line)
                state = "pre_key"
            elif ch == "'":
                state = "single"
            elif ch == '"':
                state = "double"
            elif ch == "\\":
                state = "value_escape"
            elif ch not in _BLANKS:
                state = "value"
                reader.value.append(ch)
                value_end = len(reader.value)
        elif state == "value":
            if ch in _NEWLINES:
                del reader.value[value_end:]
                reader.push(key_line)
                state = "pre_key"
            elif ch == "\\":
                state = "value_escape"
            else:
                reader.value.append(ch)
                if ch not in _BLANKS:
                    value_end = len(reader.value)
        elif state == "value_escape":
            state = "value"
            if ch not in _NEWLINES:  # an escaped newline joins the lines; anything else is literal
                reader.value.append(ch)
            value_end = len(reader.value)
        elif state == "single":
            if ch == "'":
                state = "pre_value"
            else:
                reader.value.append(ch)
        elif state == "double":
            if ch == '"':
                state = "pre_value"
            elif ch == "\\":
                state = "double_escape"
            else:
                reader.value.append(ch)
        elif state == "double_escape":
            state = "double"
            if ch in '"\\`$':
                reader.value.append(ch)
            elif ch != "\n":
                reader.value.extend(("\\", ch))
        elif state == "comment":
            if ch == "\\":
                state = "comment_escape"
            elif ch in _NEWLINES:
                state = "pre_key"
        elif state == "comment_escape":
            state = "comment"
        if ch in _NEWLINES:
            reader.line += 1
    if state == "value":
        del reader.value[value_end:]
    if state not in ("pre_key", "key", "comment", "comment_escape"):
        reader.push(key_line)
    elif state == "key":
        reader.warnings.append(f"{path}:{key_line}: no '=' in {''.join(reader.key)!r}, ignoring it")
    return reader.pairs, reader.warnings

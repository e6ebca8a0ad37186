"""Exec lines (``ExecStart=`` and friends) parsed as systemd's ``config_parse_exec`` and expanded as
its ``replace_env_argv`` at the moment a command runs.

Parsing (at load time):

* words split as ``extract_first_word`` does (quotes, C escapes; unknown escapes kept in arguments);
* ``;`` as a word of its own separates commands, ``\\;`` is a literal ``;`` argument;
* the first word may start with the prefixes ``-`` (failure ignored), ``@`` (the second word is argv[0]),
  ``+`` (full privileges), ``:`` (no variable expansion) and ``!``/``!!`` (accepted, no effect here), each
  at most once, in any order;
* specifiers expand in the arguments but never in the program path, which may not contain ``%`` at all
  (systemd.service(5) before v239: "the first argument ... may not include specifiers");
* the program is an absolute path or a bare file name. A bare name is what newer systemd (v239+) accepts
  and looks up in a fixed search path; resolving it is the supervisor's job. ``bin/x`` or ``./x`` is an
  error, as is a path ending in ``/``.

Variable expansion (at run time, ``ExecCommand.expand``): a word that is exactly ``$NAME`` becomes the
variable's value split on blanks (zero words if unset or empty); ``${NAME}`` inside a word is replaced in
place (an unset variable is empty, the word stays); ``$$`` is a literal ``$``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ._words import WordSyntaxError, extract_word, skip_blanks
from .errors import UnitFileError
from .specifiers import SpecifierContext, expand_specifiers

ExecWord = str
"""One word of an Exec line: unquoted and unescaped, specifiers expanded, variables not yet expanded."""

_SPLIT_BLANKS = re.compile(r"[ \t\n\r]+")
_PREFIX_CHARS = "-@+:!"


@dataclass(frozen=True)
class ExecCommand:
    """One command of an Exec line. ``words[0]`` is the program; with ``argv0_from_second`` (``@``)
    ``words[1]`` is argv[0] and the arguments follow, otherwise ``words`` is the whole argv."""

    words: tuple[ExecWord, ...]
    ignore_failure: bool
    argv0_from_second: bool
    privileged: bool
    line: int | None
    no_env_expand: bool = False

    @property
    def program(self) -> str:
        return self.words[0]

    def expand(self, env: Mapping[str, str]) -> tuple[str, list[str]]:
        """(program path, argv) with ``env`` substituted by systemd's rules (see the module docstring)."""
        program = self.words[0]
        if self.argv0_from_second:
            argv = self._expand_words(self.words[1:], env)
            if not argv:  # "@/bin/x $UNSET": argv[0] vanished; fall back to the program itself
                argv = [program]
            return program, argv
        return program, [program, *self._expand_words(self.words[1:], env)]

    def _expand_words(self, words: tuple[str, ...], env: Mapping[str, str]) -> list[str]:
        if self.no_env_expand:
            return list(words)
        argv: list[str] = []
        for word in words:
            if len(word) > 1 and word[0] == "$" and word[1] not in "{$":
                # The whole word names a variable: its value becomes zero or more arguments.
                value = env.get(word[1:], "")
                argv.extend(part for part in _SPLIT_BLANKS.split(value) if part)
            else:
                argv.append(replace_env(word, env))
        return argv

    def __str__(self) -> str:
        return " ".join(_quote(w) for w in self.words)


def replace_env(word: str, env: Mapping[str, str]) -> str:
    """systemd's ``replace_env``: ``${NAME}`` replaced (unset is empty), ``$$`` is ``$``, other ``$`` kept."""
    out: list[str] = []
    i = 0
    while i < len(word):
        ch = word[i]
        if ch == "$" and word.startswith("$", i + 1):
            out.append("$")
            i += 2
        elif ch == "$" and word.startswith("{", i + 1):
            end = word.find("}", i + 2)
            if end == -1:  # no closing brace: the rest is text, as systemd leaves it
                out.append(word[i:])
                break
            out.append(env.get(word[i + 2 : end], ""))
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _quote(word: str) -> str:
    if word and not any(c in word for c in " \t\n\r\"'\\;"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def parse_exec_value(
    value: str,
    path: str = "<unit>",
    line: int | None = None,
    specifiers: SpecifierContext | None = None,
) -> list[ExecCommand]:
    """The commands of one Exec line (``[]`` for an empty value, which resets the list).

    ``specifiers``, when given, expands ``%`` specifiers in the arguments. UnitFileError (file:line) for
    syntax systemd refuses; see the module docstring.
    """
    commands: list[ExecCommand] = []
    pos = 0
    try:
        while True:
            first = extract_word(value, pos)
            if first is None:
                return commands
            word, pos = first
            command, pos = _parse_command(value, word, pos, path, line, specifiers)
            commands.append(command)
    except WordSyntaxError as exc:
        raise UnitFileError(path, line, f"{exc} in {_clip(value)!r}") from None


def _parse_command(
    value: str, first: str, pos: int, path: str, line: int | None, specifiers: SpecifierContext | None
) -> tuple[ExecCommand, int]:
    if first == ";":
        raise UnitFileError(path, line, f"empty command before ';' in {_clip(value)!r}")
    flags: set[str] = set()
    program = first
    while program and program[0] in _PREFIX_CHARS:
        flag = "!!" if program.startswith("!!") else program[0]
        if flag in flags or (flag[0] == "!" and flags & {"!", "!!"}):
            break  # each prefix once; a repeated one is part of the path (and then refused below)
        flags.add(flag)
        program = program[len(flag) :]
    _check_program(program, first, value, path, line)
    words = [program]
    while True:
        pos = skip_blanks(value, pos)
        if pos >= len(value):
            break
        if value[pos] == ";" and (pos + 1 == len(value) or value[pos + 1] in " \t\n\r"):
            pos += 1
            break
        if value.startswith("\\;", pos) and (pos + 2 == len(value) or value[pos + 2] in " \t\n\r"):
            word, pos = ";", pos + 2
        else:
            extracted = extract_word(value, pos, relax=True)
            assert extracted is not None
            word, pos = extracted
            if specifiers is not None:
                word = expand_specifiers(word, specifiers, path, line)
        words.append(word)
    argv0_from_second = "@" in flags
    if argv0_from_second and len(words) < 2:
        raise UnitFileError(
            path, line, f"'@' takes argv[0] from the second word, but {_clip(value)!r} has only the program"
        )
    command = ExecCommand(
        words=tuple(words),
        ignore_failure="-" in flags,
        argv0_from_second=argv0_from_second,
        privileged="+" in flags,
        line=line,
        no_env_expand=":" in flags,
    )
    return command, pos


def _check_program(program: str, first: str, value: str, path: str, line: int | None) -> None:
    if not program:
        what = "an empty command" if first in ("", ";") else f"only the prefixes {first!r}"
        raise UnitFileError(path, line, f"{what} in {_clip(value)!r}; a command needs a program path")
    if "%" in program:
        raise UnitFileError(
            path, line, f"the program path {program!r} may not contain specifiers; use an absolute path"
        )
    if program.endswith("/"):
        raise UnitFileError(path, line, f"the program path {program!r} names a directory")
    if not program.startswith("/") and "/" in program:
        raise UnitFileError(
            path, line, f"the program path {program!r} is relative; use an absolute path or a bare name"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in program):
        raise UnitFileError(path, line, f"the program path {program!r} contains control characters")


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."

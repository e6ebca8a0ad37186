"""The exception tree of ``flotilla.units``.

Everything a parser here refuses raises a ``UnitError``; callers that read files catch that one class.
``UnitFileError`` points into a unit file (``path:line: message``) so a person can go straight to the
offending line; ``UnitNameError`` and ``FleetOptionsError`` are about names and fleet's [X-Fleet] rules,
which have no line of their own.
"""

from __future__ import annotations


class UnitError(Exception):
    """Base of every error raised by the unit-file model."""


class UnitFileError(UnitError):
    """A unit file (or one of its values) systemd would refuse: where, and what is wrong."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"

    def __reduce__(self):  # keeps the three attributes across pickling (e.g. process pools)
        return (type(self), (self.path, self.line, self.message))


class UnitNameError(UnitError):
    """A unit name systemd and fleet would refuse (bad character, suffix, length or template use)."""


class FleetOptionsError(UnitError):
    """An [X-Fleet] combination fleet's API rejects with 400; the message is fleet's own text."""

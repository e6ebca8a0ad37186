"""What validation found: entries printed as coreos-cloudinit prints them, ``line N: kind: message``."""

from __future__ import annotations

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, order=True)
class Entry:
    """One finding. ``line`` is 1-based in the cloud-config as given (before substitution: same lines)."""

    line: int
    kind: str  # ERROR or WARNING
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class Report:
    """All findings of one document, ordered by line. Errors stop a boot; warnings do not."""

    entries: tuple[Entry, ...] = ()

    @property
    def errors(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.kind == ERROR)

    @property
    def warnings(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.kind == WARNING)

    @property
    def has_errors(self) -> bool:
        return any(e.kind == ERROR for e in self.entries)

    def lines(self, source: str | None = None) -> list[str]:
        """One printable line per entry; with ``source``, prefixed ``source:N:`` for editors to jump to."""
        if source is None:
            return [str(e) for e in self.entries]
        return [f"{source}:{e.line}: {e.kind}: {e.message}" for e in self.entries]


class _Collector:
    """Mutable builder used while walking a document; ``report()`` freezes it (sorted, stable)."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []

    def error(self, line: int, message: str) -> None:
        self._entries.append(Entry(line, ERROR, message))

    def warning(self, line: int, message: str) -> None:
        self._entries.append(Entry(line, WARNING, message))

    def report(self) -> Report:
        # sorted() is stable, so findings on one line keep the order the checks ran in.
        return Report(tuple(sorted(self._entries, key=lambda e: e.line)))

"""The exception tree of ``flotilla.cloudinit``.

``CloudInitError`` is the one class callers catch. ``CloudConfigError`` means the document is wrong (it
carries the whole report, each error as ``source:line``); ``ApplyError`` means writing the machine's root
failed (a path, the OS error, and that nothing of this apply was left half-written).
"""

from __future__ import annotations

from .report import Report


class CloudInitError(Exception):
    """Base of every error raised by flotilla.cloudinit."""


class CloudConfigError(CloudInitError):
    """A cloud-config with errors; nothing was applied. ``report`` holds every finding."""

    def __init__(self, source: str, report: Report) -> None:
        self.source = source
        self.report = report
        super().__init__(str(self))

    def __str__(self) -> str:
        found = "\n".join(f"{self.source}:{e.line}: {e.message}" for e in self.report.errors)
        return (
            f"{found}\n{self.source}: cloud-config refused ({len(self.report.errors)} error(s));"
            f" fix the lines above (`flotilla cloudinit validate {self.source}` lists every problem)"
        )

    def __reduce__(self):  # keeps both attributes across pickling (e.g. process pools)
        return (type(self), (self.source, self.report))


class ApplyError(CloudInitError):
    """Writing the configuration under a machine root failed."""

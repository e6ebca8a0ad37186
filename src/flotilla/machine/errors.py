"""The exception tree of ``flotilla.machine``.

``MachineError`` is the one class callers catch. ``BootError`` means a machine could not boot (its
cloud-config was refused — nothing was written — or a step of the boot failed, named in the message);
``MachineNotRunning`` means there is no live machine for a root directory.
"""

from __future__ import annotations


class MachineError(Exception):
    """Base of every error raised by flotilla.machine."""


class BootError(MachineError):
    """The machine did not boot; the message says which step failed and what to do."""


class MachineNotRunning(MachineError):
    """No machine runs for this root directory (never booted, stopped, or killed)."""

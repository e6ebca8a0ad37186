"""Errors of the local unit manager, as systemctl reports them.

SystemdError
 ├── NoSuchUnit        the unit's file was not found ("Unit x.service not found.")
 ├── UnitNotLoaded     the file exists but could not be loaded (bad setting, masked)
 └── ManagerUnavailable the daemon's socket does not answer
"""

from __future__ import annotations

__all__ = ["ManagerUnavailable", "NoSuchUnit", "SystemdError", "UnitNotLoaded"]


class SystemdError(Exception):
    """Base of every error the unit manager raises."""


class NoSuchUnit(SystemdError):
    def __init__(self, name: str) -> None:
        super().__init__(f"Unit {name} not found.")
        self.name = name


class UnitNotLoaded(SystemdError):
    def __init__(self, name: str, load_state: str, reason: str) -> None:
        super().__init__(
            f"Unit {name} is {load_state}: {reason}" if reason else f"Unit {name} is {load_state}."
        )
        self.name = name
        self.load_state = load_state
        self.reason = reason


class ManagerUnavailable(SystemdError):
    """The daemon for a root directory is not running (or its socket does not answer)."""

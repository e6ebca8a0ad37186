"""The local unit manager: systemd's semantics for units on machines where systemd is not PID 1.

``Manager`` runs units in-process; ``flotilla systemd --root DIR`` serves one on a local socket and
``ManagerClient`` talks to it; both satisfy the ``UnitManager`` Protocol that fleet's agent uses. The
journal keeps every line a unit writes.
"""

from .client import ManagerClient
from .daemon import run_daemon, serve
from .errors import ManagerUnavailable, NoSuchUnit, SystemdError, UnitNotLoaded
from .fake import FakeUnitManager
from .journal import Journal, JournalEntry, JournalReader, LineSplitter, format_entry
from .layout import Layout
from .manager import Manager
from .protocol import JobResult, UnitManager, UnitStatus

__all__ = [
    "FakeUnitManager",
    "JobResult",
    "Journal",
    "JournalEntry",
    "JournalReader",
    "Layout",
    "LineSplitter",
    "Manager",
    "ManagerClient",
    "ManagerUnavailable",
    "NoSuchUnit",
    "SystemdError",
    "UnitManager",
    "UnitNotLoaded",
    "UnitStatus",
    "format_entry",
    "run_daemon",
    "serve",
]

"""Linearizability checking of key-value histories recorded by clients (a porcupine/knossos-style checker
for a register per key, with operations of unknown outcome). A core: no I/O, no clocks."""

from .checker import CheckResult, KeyFailure, check, check_key
from .history import KINDS, Operation, dump_history, load_history

__all__ = [
    "KINDS",
    "CheckResult",
    "KeyFailure",
    "Operation",
    "check",
    "check_key",
    "dump_history",
    "load_history",
]

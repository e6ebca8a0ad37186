"""Deterministic simulation of raft clusters: virtual time, a faulty network and disk, one seed."""

from .config import SimConfig
from .invariants import Checker, Violation
from .simulation import Outcome, Simulation
from .sweep import Summary, replay_command, run_seed, sweep

__all__ = [
    "Checker",
    "Outcome",
    "SimConfig",
    "Simulation",
    "Summary",
    "Violation",
    "replay_command",
    "run_seed",
    "sweep",
]

"""Fault runs against real member processes: clusters on loopback or in network namespaces, recorded client
histories, faults from a seed (kills, pauses, partitions, membership changes), linearizability checks."""

from .cluster import ClusterError, Member, ProcessCluster
from .nemesis import FAULTS, Nemesis
from .partition import Partitions
from .runner import RunResult, RunSettings, run_once
from .workload import Workload

__all__ = [
    "FAULTS",
    "ClusterError",
    "Member",
    "Nemesis",
    "Partitions",
    "ProcessCluster",
    "RunResult",
    "RunSettings",
    "Workload",
    "run_once",
]

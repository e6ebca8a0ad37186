"""The exception tree of ``flotilla.localcluster``.

``LocalClusterError`` is the one class callers catch; every message says what is wrong, where (the state
directory, a log file) and what to do next.
"""

from __future__ import annotations


class LocalClusterError(Exception):
    """Base of every error raised by flotilla.localcluster."""


class ClusterRunning(LocalClusterError):
    """``up`` found a cluster already running in the state directory."""


class NoCluster(LocalClusterError):
    """There is no cluster (running or stopped) in the state directory."""


class UnknownMachine(LocalClusterError):
    """``kill`` was given a name or address that is not a machine of the cluster."""


class UpFailed(LocalClusterError):
    """``up`` did not reach a milestone in time (or a step failed); what it started has been stopped."""

"""Raft snapshot files: ``Snapshotter`` writes them atomically and loads the newest intact one."""

from .errors import SnapError
from .snapshotter import Snapshotter

__all__ = ["SnapError", "Snapshotter"]

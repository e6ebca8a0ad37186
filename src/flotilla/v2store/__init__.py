"""etcd 3.4's v2 key tree as a core without I/O: directories, TTLs, in-order keys, hidden keys,
compare-and-swap/delete, the event history and watchers, the store counters and snapshots."""

from .errors import ErrorCode, V2Error
from .event import Event
from .node import NodeExtern
from .stats import StoreStats
from .store import V2Store
from .watcher import Watcher

__all__ = ["ErrorCode", "Event", "NodeExtern", "StoreStats", "V2Error", "V2Store", "Watcher"]

"""The durable backend of the v3 keyspace: buckets of ordered byte keys in one file, as etcd's bbolt.

The member keeps the MVCC state in memory and commits it here in batches from a worker thread; the
backend records the applied raft index (bucket "meta"), so a restart loads it and replays only the WAL
tail. ``open_backend`` gives the LMDB implementation.

LMDB vs SQLite (bench/backend_lmdb_vs_sqlite.py): FIGURES
"""

from flotilla.backend.batch import BUCKETS, MAX_KEY_BYTES, WriteBatch
from flotilla.backend.errors import BackendClosedError, BackendCorruptError, BackendError
from flotilla.backend.factory import open_backend
from flotilla.backend.lmdb_backend import LmdbBackend
from flotilla.backend.memory import MemoryBackend
from flotilla.backend.protocol import Backend

__all__ = [
    "BUCKETS",
    "MAX_KEY_BYTES",
    "Backend",
    "BackendClosedError",
    "BackendCorruptError",
    "BackendError",
    "LmdbBackend",
    "MemoryBackend",
    "WriteBatch",
    "open_backend",
]

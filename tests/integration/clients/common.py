"""What every PyPI-client scenario script shares: its command line, and the one normalized shape of its
results, so that a run against `flotilla etcd` and a run against real etcd print identical JSON.

Normalization keeps everything a client observes except what legitimately differs between two servers or
two runs: revisions are made relative to the revision of the scenario's first put (``base``), keys relative
to the run's unique prefix, lease IDs become "is attached" booleans, and remaining TTLs become "in range"
booleans. The scenario (see test_pypi_clients.py) is the same for every client:

    rev  step
    +0   put a=1          (base)
    +1   put b=2
    +2   put c=3
    +3   put a=1b
    +4   delete b         (a second delete of b finds nothing and writes nothing)
    +5   txn value(a)==1b and version(a)>0: success put t=yes, get a
    +6   txn value(a)==nope: failure put t=fail, get c
    +7   txn create(new)==0: success put new=1
    --   txn create(new)==0 again: fails, empty failure branch, no revision
         watch prefix from base: the 8 events +0..+7
    +8   put w=1          (live watch on w)
    +9   delete w
    +10  put l=leased with a 30 s lease; time-to-live, keep-alive
    +11  revoke: deletes l
    +12  put a=1c, asking for the previous kv
    +13  delete c, asking for the previous kv
         get prefix sorted by key, descending
         compact at +3; a watch from +1 is cancelled as compacted (compact_revision +3)
    +14  put z=end
    +15  put e with a 2 s lease, which then expires and deletes e

A client without a way to observe a step (say, etcd3gw cannot see a compacted watch) leaves that result
out; the test knows which.
"""

from __future__ import annotations

import json
import sys
import uuid

WATCH_TIMEOUT_S = 10.0
LEASE_TTL_S = 30
# Short enough to wait for; etcd raises a lease TTL below its minimum (1.5 x election timeout) anyway.
EXPIRING_TTL_S = 2
EXPIRY_WAIT_S = 10.0


def parse_args() -> tuple[str, int, str]:
    """``script.py HOST PORT`` -> (host, port, a fresh key prefix ending in '/')."""
    host, port = sys.argv[1], int(sys.argv[2])
    return host, port, f"/pypi/{uuid.uuid4().hex}/"


def text(data: bytes | str | None) -> str | None:
    if data is None:
        return None
    return data.decode() if isinstance(data, bytes) else data


class Normalizer:
    """Turns raw observations into server-independent JSON values."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.base: int | None = None

    def key(self, key: bytes | str) -> str:
        key = text(key)
        assert key.startswith(self.prefix), key
        return key[len(self.prefix) :]

    def rev(self, revision: int | str) -> int:
        assert self.base is not None, "base revision not set"
        return int(revision) - self.base

    def kv(self, key, value, create, mod, version, lease) -> dict:
        return {
            "key": self.key(key),
            "value": text(value),
            "create": self.rev(create),
            "mod": self.rev(mod),
            "version": int(version),
            "leased": int(lease or 0) != 0,
        }

    def event(self, kind: str, key, value, mod) -> dict:
        return {"type": kind, "key": self.key(key), "value": text(value) or "", "mod": self.rev(mod)}


def ttl_in_range(ttl: int | str) -> bool:
    """A remaining TTL is right if it is positive and at most the granted TTL."""
    return 0 < int(ttl) <= LEASE_TTL_S


def emit(results: dict) -> None:
    json.dump(results, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    sys.stdout.flush()

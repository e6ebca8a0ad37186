"""Micro-benchmark of the v3 keyspace core (``flotilla.mvcc.store``) on a store of N keys (default 100,000).

Each figure is the best of ``--repeat`` runs (the others were disturbed by whatever shares the core), per
operation, in microseconds, with the target the member needs to beat real etcd's put throughput:

- put of a new key (``write()``, ``put``, ``end()``), target < 10 us; update of an existing key, < 5 us;
  ``take_changes()`` per put (the member drains it after every apply);
- single-key range < 3 us; a 1,000-key range with limit 10; count of 1,000 keys; a past single-key read;
- ``events()`` from a recent revision (returns 1 event): O(events returned), not O(history);
- whole-store operations: compaction after N updates, ``hash_kv()``, ``restore()`` of N keys (< 1 s).

    .venv/bin/python bench/mvcc_store.py
    .venv/bin/python bench/mvcc_store.py --keys 200000 --repeat 5
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from flotilla.mvcc.store import KeyValueStore

VALUE = b"v" * 64


def _key(i: int) -> bytes:
    return b"/registry/pods/default/pod-%08d" % i


def _filled(keys: int, track_changes: bool = False) -> KeyValueStore:
    store = KeyValueStore(track_changes=track_changes)
    for i in range(keys):
        txn = store.write()
        txn.put(_key(i), VALUE)
        txn.end()
    return store


def _best_us(run: Callable[[], int], repeat: int) -> float:
    """Best time per operation over ``repeat`` runs; ``run`` returns how many operations it did."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        ops = run()
        best = min(best, (time.perf_counter() - started) / ops * 1e6)
    return best


def _report(name: str, us: float, target_us: float | None = None) -> None:
    verdict = ""
    if target_us is not None:
        verdict = "  ok" if us < target_us else f"  SLOW (target < {target_us:g} us)"
    print(f"{name:<48} {us:>10.2f} us{verdict}")


def _report_ms(name: str, seconds: float, target_s: float | None = None) -> None:
    verdict = ""
    if target_s is not None:
        verdict = "  ok" if seconds < target_s else f"  SLOW (target < {target_s:g} s)"
    print(f"{name:<48} {seconds * 1e3:>10.1f} ms{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, ops = args.keys, args.ops

    store = _filled(n, track_changes=True)
    store.take_changes()
    fresh = iter(range(n, n + ops * args.repeat))

    def put_new() -> int:
        for _ in range(ops):
            txn = store.write()
            txn.put(_key(next(fresh)), VALUE)
            txn.end()
        store.take_changes()
        return ops

    def put_update() -> int:
        for i in range(ops):
            txn = store.write()
            txn.put(_key(i), VALUE)
            txn.end()
        store.take_changes()
        return ops

    _report(f"put new key ({n:,} keys, + take_changes)", _best_us(put_new, args.repeat), 10)
    _report("put existing key (+ take_changes)", _best_us(put_update, args.repeat), 5)

    def drain() -> float:
        for i in range(ops):
            txn = store.write()
            txn.put(_key(i), VALUE)
            txn.end()
        started = time.perf_counter()
        store.take_changes()
        return (time.perf_counter() - started) / ops * 1e6

    _report("  of which take_changes per put", min(drain() for _ in range(args.repeat)))

    probe = [_key(i) for i in range(0, n, max(1, n // ops))][:ops]

    def range_one() -> int:
        for key in probe:
            store.range(key)
        return len(probe)

    def range_limit() -> int:
        for key in probe[:2000]:
            store.range(key, _key(n + 1000), limit=10)
        return len(probe[:2000])

    def count_1000() -> int:
        for i in range(2000):
            store.count(_key(i), _key(i + 1000))
        return 2000

    past = store.revision - 10

    def range_past() -> int:
        for key in probe:
            store.range(key, revision=past)
        return len(probe)

    _report("range, single key", _best_us(range_one, args.repeat), 3)
    _report("range to end of 100k+ keys, limit 10", _best_us(range_limit, args.repeat))
    _report("count of 1,000 keys", _best_us(count_1000, args.repeat))
    _report("range, single key, past revision", _best_us(range_past, args.repeat))

    def events_recent() -> int:
        for _ in range(ops):
            store.events(store.revision, b"/registry/", b"/registry0")
        return ops

    in_log = store.retained_versions
    _report(f"events() from the last revision ({in_log:,} in log)", _best_us(events_recent, args.repeat))

    started = time.perf_counter()
    store.compact(store.revision)
    compact_s = time.perf_counter() - started
    freed = len(store.take_changes())
    _report_ms(f"compact (frees {freed:,} versions)", compact_s)

    started = time.perf_counter()
    store.hash_kv()
    _report_ms(f"hash_kv ({store.retained_versions:,} versions)", time.perf_counter() - started)

    records = sorted(_filled(n, track_changes=True).take_changes())
    best = float("inf")
    for _ in range(args.repeat):
        gc.collect()
        started = time.perf_counter()
        KeyValueStore.restore(records, 0)
        best = min(best, time.perf_counter() - started)
    _report_ms(f"restore of {n:,} keys", best, 1.0)


if __name__ == "__main__":
    main()

"""Restart of a member holding 100,000 keys: Flotilla and Debian's etcd 3.4 side by side.

For each server: start a single member (``--max-txn-ops`` raised so that a txn can carry ``--txn-ops``
puts), fill it with ``--keys`` keys of 100 bytes in txns of ``--txn-ops`` puts, then restart it
``--repeat`` times each way:

- ``SIGTERM``: a clean stop (the member commits its backend and exits), then a start;
- ``kill -9``: overwrite ``--txn-ops`` keys and kill the member the moment the last answer arrives, so
  the backend may lack the tail and the start must replay it from the WAL; then a start.

Two times are measured from the moment the new process is spawned: until it logs ``ready to serve client
requests`` (what etcd's own test tools wait for) and until a linearizable count of every key answers
(checked to be ``--keys``). ``empty`` is the start of a fresh member with an empty data directory, the
floor (process start, imports, election). The table shows the median (and the slowest) of the repeats.
Goal (the issue): a member holding 100,000 keys is ready to serve in under 3 s.

    .venv/bin/python bench/etcd_restart.py                 # ~1 minute
    .venv/bin/python bench/etcd_restart.py --keys 200000 --repeat 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import grpc  # noqa: E402
from processes import READY_LINE, MemberProcess, free_port, real_etcd_available  # noqa: E402

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc  # noqa: E402

VALUE = b"r" * 100
PREFIX = b"/bench/restart/"
GOAL_S = 3.0
REQUEST_TIMEOUT_S = 30.0


class TimedMember(MemberProcess):
    """A member that remembers when it logged the ready line (``ready_at``, time.monotonic())."""

    ready_at: float = 0.0

    def _read_log(self, proc) -> None:
        for line in proc.stderr:
            self.log.append(line.rstrip("\n"))
            if READY_LINE in line:
                self.ready_at = time.monotonic()
                self._ready.set()


def new_member(kind: str, base: Path, *extra: str) -> TimedMember:
    return TimedMember(kind, base / f"{kind}-{free_port()}", free_port(), free_port(), list(extra))


def _key(i: int) -> bytes:
    return PREFIX + b"%08d" % i


def _txn(kv, first: int, count: int) -> None:
    ops = [
        rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=_key(i), value=VALUE))
        for i in range(first, first + count)
    ]
    kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=REQUEST_TIMEOUT_S)


def fill(member: MemberProcess, keys: int, txn_ops: int) -> float:
    """Puts ``keys`` keys in txns of ``txn_ops`` puts, 4 in flight; the seconds it took."""
    started = time.monotonic()
    with grpc.insecure_channel(member.address) as channel, ThreadPoolExecutor(4) as pool:
        kv = rpc_pb2_grpc.KVStub(channel)
        firsts = range(0, keys, txn_ops)
        list(pool.map(lambda first: _txn(kv, first, min(txn_ops, keys - first)), firsts))
    return time.monotonic() - started


def count_keys(address: str, deadline_s: float) -> int:
    """A linearizable count of the bench's keys, retried until it answers or ``deadline_s`` passes."""
    end = PREFIX[:-1] + bytes([PREFIX[-1] + 1])
    request = rpc_pb2.RangeRequest(key=PREFIX, range_end=end, count_only=True)
    deadline = time.monotonic() + deadline_s
    with grpc.insecure_channel(address) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        while True:
            try:
                return kv.Range(request, timeout=1.0, wait_for_ready=True).count
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


@dataclass
class Restarts:
    ready_s: list[float] = field(default_factory=list)
    serving_s: list[float] = field(default_factory=list)

    def cell(self) -> str:
        if not self.ready_s:
            return "-"
        return (
            f"{statistics.median(self.ready_s):5.2f}/{statistics.median(self.serving_s):<5.2f} "
            f"(max {max(self.serving_s):.2f})"
        )


def timed_start(member: TimedMember, keys: int) -> tuple[float, float]:
    """Starts the member; seconds until its ready line and until it answered a count of ``keys`` keys."""
    spawned = time.monotonic()
    member.start(timeout_s=120)
    ready = member.ready_at - spawned
    counted = count_keys(member.address, 60)
    serving = time.monotonic() - spawned
    if counted != keys:
        raise AssertionError(f"{member.kind} holds {counted} keys after the restart, not {keys}")
    return ready, serving


def data_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def bench_server(kind: str, base: Path, args) -> dict:
    row: dict = {"kind": kind}
    empty = new_member(kind, base)
    try:
        row["empty"] = timed_start(empty, 0)[1]
    finally:
        empty.stop()
    member = new_member(kind, base, "--max-txn-ops", str(args.txn_ops))
    stop = Restarts()
    kill = Restarts()
    try:
        member.start(timeout_s=60)
        row["fill_s"] = fill(member, args.keys, args.txn_ops)
        for _ in range(args.repeat):
            # kill -9 right after a write: the backend may not hold the last txn yet, the WAL does.
            with grpc.insecure_channel(member.address) as channel:
                _txn(rpc_pb2_grpc.KVStub(channel), 0, min(args.txn_ops, args.keys))
            member.kill()
            ready, serving = timed_start(member, args.keys)
            kill.ready_s.append(ready)
            kill.serving_s.append(serving)
            member.stop(timeout_s=60)
            ready, serving = timed_start(member, args.keys)
            stop.ready_s.append(ready)
            stop.serving_s.append(serving)
        row["size_mb"] = data_size_mb(member.data_dir)
    finally:
        member.stop()
    row["stop"], row["kill"] = stop, kill
    return row


def print_table(rows: list[dict], args) -> None:
    print(
        f"\n{args.keys:,} keys of 100 bytes, filled in txns of {args.txn_ops} puts; {args.repeat} restarts "
        "each way; seconds from spawning the process: ready line / first answered count (median, max)\n"
    )
    header = (
        f"{'server':<9} {'fill s':>7} {'data MB':>8} {'empty start':>12} | {'SIGTERM + start':<28} | "
        f"{'kill -9 + start':<28} | goal < {GOAL_S:g} s"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        worst = max(row["stop"].serving_s + row["kill"].serving_s, default=float("inf"))
        goal = "met" if worst < GOAL_S else "not met"
        print(
            f"{row['kind']:<9} {row['fill_s']:>7.1f} {row['size_mb']:>8.1f} {row['empty']:>12.2f} | "
            f"{row['stop'].cell():<28} | {row['kill'].cell():<28} | {goal}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=100_000, help="keys in the member (default 100,000)")
    p.add_argument("--txn-ops", type=int, default=1000, help="puts per fill txn (default 1000)")
    p.add_argument("--repeat", type=int, default=3, help="restarts each way (default 3)")
    p.add_argument("--servers", nargs="+", choices=["etcd", "flotilla"], default=["etcd", "flotilla"])
    p.add_argument("--dir", type=Path, default=None, help="where the data directories go (a temp dir)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if "etcd" in args.servers and not real_etcd_available():
        sys.exit("Debian's etcd is not installed (/usr/bin/etcd): apt-get install etcd-server etcd-client")
    base = Path(tempfile.mkdtemp(prefix="flotilla-restart-", dir=args.dir))
    try:
        rows = []
        for kind in args.servers:
            rows.append(bench_server(kind, base, args))
            print(f"{kind}: done", flush=True)
        print_table(rows, args)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

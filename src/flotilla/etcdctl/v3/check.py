"""``check perf`` (ctlv3/command/check.go): rate-limited puts of 256-byte keys and 1 KiB values from many
clients for a minute, then etcdctl's PASS/FAIL lines (throughput > 90% of the target, slowest request
<= 0.5 s, standard deviation <= 0.1 s).

``FLOTILLA_ETCDCTL_CHECK_PERF_SECONDS`` shortens the run (tests only; etcdctl has no such knob).
"""

from __future__ import annotations

import os
import queue
import random
import statistics
import sys
import threading
import time

from flotilla.etcd.api import rpc_pb2
from flotilla.etcdctl.v3.cli import Ctl
from flotilla.etcdctl.v3.client import Client, RPCFailed
from flotilla.etcdctl.v3.cmdline import Command, Flag
from flotilla.etcdctl.v3.errors import EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT, CtlExit, fail
from flotilla.etcdctl.v3.kv import prefix_end

# load -> (writes per second, clients, seconds)
LOADS = {"s": (150, 50, 60), "m": (1000, 200, 60), "l": (8000, 500, 60), "xl": (15000, 1000, 60)}
ALIASES = {
    "s": "s",
    "small": "s",
    "m": "m",
    "medium": "m",
    "l": "l",
    "large": "l",
    "xl": "xl",
    "xLarge": "xl",
}
DURATION_KNOB = "FLOTILLA_ETCDCTL_CHECK_PERF_SECONDS"
_CHANNELS = 8  # threads share a few connections: Python pays per channel, not per request


def commands() -> list[Command]:
    check = Command("check <subcommand>", "commands for checking properties of the etcd cluster").add(
        Command("perf [options]", "Check the performance of the etcd cluster", _perf, flags=[
            Flag("load", "string", "s", "The performance check's workload model. Accepted workloads: "
                 "s(small), m(medium), l(large), xl(xLarge)"),
            Flag("prefix", "string", "/etcdctl-check-perf/",
                 "The prefix for writing the performance check's keys."),
            Flag("auto-compact", "bool", False, "Compact storage with last revision after test is finished."),
            Flag("auto-defrag", "bool", False, "Defragment storage after test is finished."),
        ]),
        Command("datascale [options]", "Check the memory usage of holding data for different workloads on a "
                "given server endpoint.", _datascale),
    )  # fmt: skip
    return [check]


def _datascale(ctl: Ctl) -> None:
    fail(EXIT_ERROR, "check datascale is not supported by Flotilla's etcdctl")


def _varint_key(number: int) -> bytes:
    # binary.PutVarint into a zeroed 256-byte buffer
    zigzag = (number << 1) ^ (number >> 63)
    out = bytearray(256)
    i = 0
    while zigzag >= 0x80:
        out[i] = (zigzag & 0x7F) | 0x80
        zigzag >>= 7
        i += 1
    out[i] = zigzag
    return bytes(out)


def _perf(ctl: Ctl) -> None:
    model = ALIASES.get(ctl.flag("load"))
    if model is None:
        fail(EXIT_BAD_FEATURE, f"unknown load option {ctl.flag('load')}")
    limit, client_count, duration_s = LOADS[model]
    if os.environ.get(DURATION_KNOB):
        duration_s = float(os.environ[DURATION_KNOB])
    prefix = ctl.flag("prefix").encode("utf-8", "surrogateescape")
    config = ctl.client_config()
    clients = [Client(config) for _ in range(min(client_count, _CHANNELS))]
    first = clients[0]
    probe = rpc_pb2.RangeRequest(key=prefix, range_end=prefix_end(prefix), limit=1)
    try:
        resp = first.call(first.kv.Range, probe, duration_s)
    except RPCFailed as e:
        fail(EXIT_ERROR, str(e))
    if resp.kvs:
        shown = ctl.flag("prefix")
        fail(EXIT_INVALID_INPUT, f'prefix "{shown}" has keys. Delete with etcdctl del --prefix {shown} first')
    latencies, errors = _run_load(clients, client_count, limit, duration_s, prefix)
    _finish(ctl, first, prefix)
    _report(latencies, errors, limit)


def _run_load(clients, client_count: int, limit: int, duration_s: float, prefix: bytes):
    requests: queue.Queue = queue.Queue(maxsize=client_count)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    value = bytes(1024)

    def worker(client: Client) -> None:
        while (key := requests.get()) is not None:
            started = time.monotonic()
            try:
                client.call(client.kv.Put, rpc_pb2.PutRequest(key=key, value=value), None, log=False)
                with lock:
                    latencies.append(time.monotonic() - started)
            except RPCFailed as e:
                with lock:
                    errors[str(e)] = errors.get(str(e), 0) + 1

    workers = [
        threading.Thread(target=worker, args=(clients[i % len(clients)],)) for i in range(client_count)
    ]
    for w in workers:
        w.start()
    bar = _Bar(duration_s)
    start = time.monotonic()
    rng = random.Random()
    sent = 0
    while (now := time.monotonic()) - start < duration_s:
        due = start + sent / limit  # rate.Limiter with a burst of one
        if due > now:
            time.sleep(min(due - now, 0.05))
            bar.tick()
            continue
        requests.put(prefix + _varint_key(rng.randrange(2**63 - 1)))
        sent += 1
    for _ in workers:
        requests.put(None)
    for w in workers:
        w.join()
    bar.finish()
    total_s = time.monotonic() - start
    return (latencies, total_s), errors


class _Bar:
    """cheggaaa/pb's "Bom !" bar, one step a second."""

    def __init__(self, total_s: float) -> None:
        self.total = max(int(total_s), 1)
        self.start = time.monotonic()
        self.shown = -1

    def tick(self) -> None:
        done = min(int(time.monotonic() - self.start), self.total)
        if done != self.shown:
            self.shown = done
            width = 40
            filled = width * done // self.total
            sys.stdout.write(f"\r {done} / {self.total} B{'o' * filled}{' ' * (width - filled)}m ! "
                             f"{100.0 * done / self.total:.2f}%")  # fmt: skip
            sys.stdout.flush()

    def finish(self) -> None:
        self.shown = -1
        self.start = time.monotonic() - self.total
        self.tick()
        sys.stdout.write("\n")


def _finish(ctl: Ctl, client: Client, prefix: bytes) -> None:
    request = rpc_pb2.DeleteRangeRequest(key=prefix, range_end=prefix_end(prefix))
    try:
        resp = client.call(client.kv.DeleteRange, request, 30)
    except RPCFailed as e:
        fail(EXIT_ERROR, str(e))
    if ctl.flag("auto-compact"):
        revision = resp.header.revision
        sys.stdout.write(f"Compacting with revision {revision}\n")
        try:
            client.call(client.kv.Compact, rpc_pb2.CompactionRequest(revision=revision, physical=True), 30)
        except RPCFailed as e:
            fail(EXIT_ERROR, str(e))
        sys.stdout.write(f"Compacted with revision {revision}\n")
    if ctl.flag("auto-defrag"):
        for endpoint in client.endpoints:
            sys.stdout.write(f'Defragmenting "{endpoint}"\n')
            one = Client(client.config, [endpoint], passthrough=True)
            try:
                one.call(one.maintenance.Defragment, rpc_pb2.DefragmentRequest(), 30)
            except RPCFailed as e:
                fail(EXIT_ERROR, str(e))
            finally:
                one.close()
            sys.stdout.write(f'Defragmented "{endpoint}"\n')


def _report(latency_total, errors: dict[str, int], limit: int) -> None:
    latencies, total_s = latency_total
    rps = len(latencies) / total_s if total_s > 0 else 0.0
    slowest = max(latencies, default=0.0)
    stddev = statistics.pstdev(latencies) if latencies else 0.0
    ok = True
    if errors:
        print("FAIL: too many errors")
        for text, count in errors.items():
            print(f"FAIL: ERROR({text}) -> {count}")
        ok = False
    if rps / limit <= 0.9:
        print(f"FAIL: Throughput too low: {int(rps) + 1} writes/s")
        ok = False
    else:
        print(f"PASS: Throughput is {int(rps) + 1} writes/s")
    if slowest > 0.5:
        print(f"Slowest request took too long: {slowest:f}s")
        ok = False
    else:
        print(f"PASS: Slowest request took {slowest:f}s")
    if stddev > 0.1:
        print(f"Stddev too high: {stddev:f}s")
        ok = False
    else:
        print(f"PASS: Stddev is {stddev:f}s")
    if ok:
        print("PASS")
        return
    print("FAIL")
    sys.stdout.flush()
    raise CtlExit(EXIT_ERROR)

"""etcd v3 API throughput and latency: Flotilla and Debian's etcd 3.4 side by side in one run, with ratios.

Both servers run as single members on free loopback ports, each in its own data directory (the real disk,
fsync on). For each workload and client count the same load runs against etcd, then against Flotilla:

- ``put grpc``: ``KV.Put`` of a 100-byte value to keys spread over a 10,000-key space;
- ``put gateway``: the same put as ``POST /v3/kv/put`` JSON through the v3 gateway, HTTP/1.1 keep-alive;
- ``range linearizable`` / ``range serializable``: ``KV.Range`` of one key out of 1,000 prefilled keys.

The load generator is built not to be the bottleneck, because client and servers share the machine's
cores: ``--procs`` client processes (default 1) each run an asyncio loop with its share of the ``--clients``
concurrent requests in flight (each "client" is a coroutine that sends its next request as soon as the
previous answer arrives). gRPC requests go over a few channels (``--channels`` per process, each its own
HTTP/2 connection), pre-serialized, and the answers are not parsed; gateway requests use one aiohttp
session per process with a keep-alive pool. The table shows the CPU the client processes themselves took
(% of one core over the measured window) next to each server's, so a client-bound row is visible.

After the table, the Flotilla member is profiled under the put load over gRPC: py-spy (if installed in the
venv or on PATH; ``pip install py-spy``, it is not a project dependency) samples the running member, or
``--profiler cprofile`` runs a separate member under cProfile and stops it with SIGTERM so that it writes
its profile. Either way it prints the top functions by self time and by cumulative time, and the CPU each
thread of the member used.

    .venv/bin/python bench/etcd_v3.py                        # ~2 minutes
    .venv/bin/python bench/etcd_v3.py --duration 3 --clients 16 --workloads put-grpc range-serializable
    .venv/bin/python bench/etcd_v3.py --profile-only --profiler cprofile

The goal (the issue): Flotilla >= 1.0x etcd's throughput at <= 1.0x its p99, single member.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from processes import MemberProcess, free_port, real_etcd_available, start_member  # noqa: E402

VALUE = b"v" * 100
PUT_KEYS = 10_000
RANGE_KEYS = 1_000
PREFILL_TXN_OPS = 100
REQUEST_TIMEOUT_S = 10.0
START_DELAY_S = 0.5  # lets every client process connect before the clock starts


@dataclass(frozen=True)
class Workload:
    name: str
    op: str  # "put" or "range"
    transport: str  # "grpc" or "gateway"
    serializable: bool = False

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "-")


WORKLOADS = (
    Workload("put grpc", "put", "grpc"),
    Workload("put gateway", "put", "gateway"),
    Workload("range linearizable", "range", "grpc"),
    Workload("range serializable", "range", "grpc", serializable=True),
)


@dataclass(frozen=True)
class LoadSpec:
    """What one client process runs: ``clients`` concurrent requests from ``start_at`` (wall clock) for
    ``warmup_s`` unmeasured then ``duration_s`` measured seconds."""

    address: str
    workload: Workload
    clients: int
    channels: int
    start_at: float
    warmup_s: float
    duration_s: float
    first_key: int


@dataclass
class LoadResult:
    ops: int
    errors: int
    client_cpu_s: float
    latencies_s: array
    first_error: str = ""


# --- the load generator (runs in client processes) -----------------------------------------------------


def _key(op: str, i: int) -> bytes:
    return (b"bench/put/%06d" if op == "put" else b"bench/range/%06d") % i


def _grpc_requests(workload: Workload, first_key: int) -> list[bytes]:
    from flotilla.etcd.api import rpc_pb2

    if workload.op == "put":
        keys = [_key("put", (first_key + i) % PUT_KEYS) for i in range(PUT_KEYS)]
        return [rpc_pb2.PutRequest(key=k, value=VALUE).SerializeToString() for k in keys]
    keys = [_key("range", (first_key + i) % RANGE_KEYS) for i in range(RANGE_KEYS)]
    return [rpc_pb2.RangeRequest(key=k, serializable=workload.serializable).SerializeToString() for k in keys]


def _gateway_bodies(first_key: int) -> list[bytes]:
    value = base64.b64encode(VALUE).decode()
    return [
        json.dumps(
            {"key": base64.b64encode(_key("put", (first_key + i) % PUT_KEYS)).decode(), "value": value}
        ).encode()
        for i in range(PUT_KEYS)
    ]


class _Recorder:
    """Latencies of the requests that started and ended inside the measured window."""

    def __init__(self, measure_from: float, measure_until: float) -> None:
        self.measure_from = measure_from
        self.measure_until = measure_until
        self.latencies = array("d")
        self.errors = 0
        self.first_error = ""

    def record(self, started: float, ended: float) -> None:
        if started >= self.measure_from and ended <= self.measure_until:
            self.latencies.append(ended - started)

    def error(self, error: BaseException) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = f"{type(error).__name__}: {error}"[:300]


async def _grpc_load(spec: LoadSpec, rec: _Recorder, stop_at: float) -> None:
    import grpc

    method = "/etcdserverpb.KV/Put" if spec.workload.op == "put" else "/etcdserverpb.KV/Range"
    requests = _grpc_requests(spec.workload, spec.first_key)
    # A local subchannel pool gives every channel its own connection (gRPC shares them by default).
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(spec.address, options=options) for _ in range(spec.channels)]
    for channel in channels:
        await asyncio.wait_for(channel.channel_ready(), REQUEST_TIMEOUT_S)
    # No serializers: requests go out pre-encoded and answers stay bytes, so the client spends its CPU on
    # the transport only.
    calls = [ch.unary_unary(method) for ch in channels]

    async def client(i: int) -> None:
        call, n, k = calls[i % len(calls)], len(requests), i * 7919
        await _sleep_until(spec.start_at)
        while (started := time.perf_counter()) < stop_at:
            try:
                await call(requests[k % n], timeout=REQUEST_TIMEOUT_S)
            except grpc.RpcError as error:
                rec.error(error)
            rec.record(started, time.perf_counter())
            k += 1

    try:
        await asyncio.gather(*(client(i) for i in range(spec.clients)))
    finally:
        for channel in channels:
            await channel.close()


async def _gateway_load(spec: LoadSpec, rec: _Recorder, stop_at: float) -> None:
    import aiohttp

    url = f"http://{spec.address}/v3/kv/put"
    bodies = _gateway_bodies(spec.first_key)
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=spec.clients, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(i: int) -> None:
            n, k = len(bodies), i * 7919
            await _sleep_until(spec.start_at)
            while (started := time.perf_counter()) < stop_at:
                try:
                    async with session.post(url, data=bodies[k % n], headers=headers) as response:
                        await response.read()
                        if response.status != 200:
                            rec.error(RuntimeError(f"HTTP {response.status}"))
                except (TimeoutError, aiohttp.ClientError) as error:
                    rec.error(error)
                rec.record(started, time.perf_counter())
                k += 1

        await asyncio.gather(*(client(i) for i in range(spec.clients)))


async def _sleep_until(perf_deadline: float) -> None:
    delay = perf_deadline - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def _run_load(spec: LoadSpec) -> LoadResult:
    # The spec's times are wall clock (shared by all processes); perf_counter is what we measure with.
    offset = time.perf_counter() - time.time()
    start = spec.start_at + offset
    measure_from = start + spec.warmup_s
    stop_at = measure_from + spec.duration_s
    rec = _Recorder(measure_from, stop_at)
    spec = LoadSpec(**{**spec.__dict__, "start_at": start})
    load = _grpc_load if spec.workload.transport == "grpc" else _gateway_load
    task = asyncio.ensure_future(load(spec, rec, stop_at))
    await _sleep_until(measure_from)
    cpu_from = time.process_time()
    await _sleep_until(stop_at)
    cpu_s = time.process_time() - cpu_from
    try:
        await task
    except Exception as error:  # e.g. no connection: reported in the table, not a crash of the run
        rec.error(error)
    return LoadResult(len(rec.latencies), rec.errors, cpu_s, rec.latencies, rec.first_error)


def run_load_process(spec: LoadSpec) -> LoadResult:
    """Entry point of a client process (picklable for multiprocessing)."""
    return asyncio.run(_run_load(spec))


# --- measuring servers ---------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds per thread, keyed ``name/tid`` (the main thread is ``name/pid``)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[f"{name}/{task.name}"] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


@dataclass
class Measurement:
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    client_cpu_pct: float
    server_cpu_pct: float
    first_error: str = ""


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def measure(pool, procs: int, member: MemberProcess, workload: Workload, clients: int, args) -> Measurement:
    """Runs one workload against one member with ``clients`` requests in flight, split over the pool."""
    start_at = time.time() + START_DELAY_S
    specs = []
    for p in range(procs):
        share = clients // procs + (1 if p < clients % procs else 0)
        if share:
            channels = max(1, min(args.channels, share))
            specs.append(
                LoadSpec(
                    member.address, workload, share, channels, start_at, args.warmup, args.duration, p * 997
                )
            )
    pending = pool.map_async(run_load_process, specs)
    time.sleep(max(0.0, start_at + args.warmup - time.time()))
    cpu_from = process_cpu_s(member.proc.pid)
    time.sleep(max(0.0, start_at + args.warmup + args.duration - time.time()))
    server_cpu_s = process_cpu_s(member.proc.pid) - cpu_from
    results: list[LoadResult] = pending.get(timeout=args.warmup + args.duration + 60)
    latencies = sorted(x for r in results for x in r.latencies_s)
    return Measurement(
        ops_per_s=len(latencies) / args.duration,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        errors=sum(r.errors for r in results),
        client_cpu_pct=100 * sum(r.client_cpu_s for r in results) / args.duration,
        server_cpu_pct=100 * server_cpu_s / args.duration,
        first_error=next((r.first_error for r in results if r.first_error), ""),
    )


def prefill_ranges(member: MemberProcess) -> None:
    """Puts the RANGE_KEYS keys the range workloads read, in txns of PREFILL_TXN_OPS puts."""
    import grpc

    from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc

    with grpc.insecure_channel(member.address) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        for first in range(0, RANGE_KEYS, PREFILL_TXN_OPS):
            ops = [
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=_key("range", i), value=VALUE))
                for i in range(first, min(RANGE_KEYS, first + PREFILL_TXN_OPS))
            ]
            kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=REQUEST_TIMEOUT_S)


# --- the table -----------------------------------------------------------------------------------------

HEADER = (
    f"{'workload':<19} {'clients':>7} | {'etcd ops/s':>10} {'flotilla':>9} {'ratio':>6} | "
    f"{'etcd p50/p99 ms':>16} {'flotilla p50/p99':>17} {'p99 x':>6} | {'client CPU% e/f':>15} "
    f"{'server CPU% e/f':>15} | goal"
)


def format_row(workload: Workload, clients: int, etcd: Measurement, flot: Measurement) -> str:
    ratio = flot.ops_per_s / etcd.ops_per_s if etcd.ops_per_s else float("nan")
    p99_ratio = flot.p99_ms / etcd.p99_ms if etcd.p99_ms else float("nan")
    goal = "met" if ratio >= 1.0 and p99_ratio <= 1.0 else "not met"
    errors = ""
    if etcd.errors or flot.errors:
        errors = f"  errors e/f {etcd.errors}/{flot.errors}: {etcd.first_error or flot.first_error}"
    return (
        f"{workload.name:<19} {clients:>7} | {etcd.ops_per_s:>10.0f} {flot.ops_per_s:>9.0f} {ratio:>5.2f}x | "
        f"{etcd.p50_ms:>7.2f}/{etcd.p99_ms:<8.2f} {flot.p50_ms:>8.2f}/{flot.p99_ms:<8.2f} "
        f"{p99_ratio:>5.2f}x | "
        f"{etcd.client_cpu_pct:>7.0f}/{flot.client_cpu_pct:<7.0f} {etcd.server_cpu_pct:>7.0f}/"
        f"{flot.server_cpu_pct:<7.0f} | {goal}{errors}"
    )


# --- profiling the Flotilla member ---------------------------------------------------------------------


def _short(frame: str) -> str:
    """``func (/long/path/site-packages/pkg/mod.py)`` -> ``func (pkg/mod.py)``."""
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        at = frame.find(marker)
        if at >= 0:
            rest = frame[at + len(marker) :]
            if marker == "/lib/python3":
                rest = "stdlib/" + rest.split("/", 1)[-1]
            return frame[: frame.index("(") + 1] + rest
    return frame


_TRUNK_FILES = ("<frozen runpy>", "click/", "asyncio/runners.py", "flotilla/cli/", "threading.py")
_TRUNK_FUNCTIONS = {"run_forever", "run_until_complete", "_run_once", "run_member", "_run_loop", "run"}


def _is_trunk(frame: str) -> bool:
    """Frames every sample of a thread passes through (process start, the loop's run): no information."""
    function = frame.split(" (", 1)[0].rsplit(".", 1)[-1]
    return function in _TRUNK_FUNCTIONS or any(f in frame for f in _TRUNK_FILES)


def summarize_pyspy(raw_path: Path, top: int) -> None:
    """Self and cumulative sample counts per function from py-spy's raw (collapsed stack) output."""
    self_counts: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        if frames and frames[0].startswith("thread ("):
            threads[frames[0]] += count
            frames = frames[1:]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        total += count
        if frames:
            self_counts[frames[-1]] += count
        for frame in set(frames):
            if not _is_trunk(frame):
                cumulative[frame] += count
    print(f"\npy-spy: {total} samples of running threads")
    for thread, count in threads.most_common():
        print(f"  {thread:<40} {100 * count / max(total, 1):5.1f}%")
    for title, counter in (("self time", self_counts), ("cumulative time", cumulative)):
        print(f"\ntop {top} functions by {title} (% of samples)")
        for frame, count in counter.most_common(top):
            print(f"  {100 * count / max(total, 1):5.1f}%  {frame}")


def _pyspy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def print_thread_cpu(before: dict[str, float], after: dict[str, float], seconds: float) -> None:
    print(f"\nCPU of the Flotilla member's threads over {seconds:.0f} s (% of one core)")
    rows = sorted(((after[t] - before.get(t, 0.0), t) for t in after), reverse=True)
    for used, name in rows:
        if used > 0:
            print(f"  {100 * used / seconds:5.1f}%  {name}")


def profile_with_pyspy(pool, member: MemberProcess, workload: Workload, clients: int, args, tmp: Path):
    raw = tmp / "pyspy.txt"
    seconds = args.warmup + args.duration + START_DELAY_S
    spy = subprocess.Popen(
        [_pyspy(), "record", "--pid", str(member.proc.pid), "--rate", "200", "--duration", str(int(seconds)),
         "--format", "raw", "--nolineno", "--threads", "--output", str(raw), *args.pyspy_flags.split()],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        threads_before = thread_cpu_s(member.proc.pid)
        m = measure(pool, args.procs, member, workload, clients, args)
        threads_after = thread_cpu_s(member.proc.pid)
        _, err = spy.communicate(timeout=30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    print(f"under py-spy: {m.ops_per_s:.0f} ops/s, p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms")
    print_thread_cpu(threads_before, threads_after, args.warmup + args.duration)
    if not raw.exists():
        print(f"py-spy wrote no profile: {err.strip()[-500:]}")
        return
    summarize_pyspy(raw, args.top)


class CProfiledMember(MemberProcess):
    """A Flotilla member run under ``python -m cProfile``; it writes ``profile_path`` when stopped."""

    profile_path: Path = Path("flotilla.prof")

    def command(self) -> list[str]:
        cmd = super().command()
        return [cmd[0], "-m", "cProfile", "-o", str(self.profile_path), *cmd[1:]]


def profile_with_cprofile(pool, workload: Workload, clients: int, args, tmp: Path) -> None:
    import pstats

    member = CProfiledMember("flotilla", tmp / "cprofiled", free_port(), free_port())
    member.profile_path = tmp / "flotilla.prof"
    member.start()
    try:
        threads_before = thread_cpu_s(member.proc.pid)
        m = measure(pool, args.procs, member, workload, clients, args)
        threads_after = thread_cpu_s(member.proc.pid)
    finally:
        member.stop(timeout_s=60)
    print(f"under cProfile: {m.ops_per_s:.0f} ops/s, p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms")
    print_thread_cpu(threads_before, threads_after, args.warmup + args.duration)
    if not member.profile_path.exists():
        print("cProfile wrote no profile (did the member exit on SIGTERM?)")
        return
    stats = pstats.Stats(str(member.profile_path))
    stats.strip_dirs()
    print(f"\ntop {args.top} functions by tottime (main thread only; includes start-up)")
    stats.sort_stats("tottime").print_stats(args.top)
    # The first ~20 by cumulative time are the process's trunk (runpy, click, the loop's run): show more.
    print(f"\ntop {args.top} functions by cumulative time after the trunk (main thread only)")
    stats.sort_stats("cumulative").print_stats(args.top + 20)


def grpc_socket_of(pid: int) -> str | None:
    """The member's private gRPC socket (an abstract unix socket ``@flotilla-grpc-<pid>-...``), as a gRPC
    target, or None if it has none that /proc/net/unix shows."""
    prefix = f"@flotilla-grpc-{pid}-"
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        path = line.split()[-1]
        if path.startswith(prefix):
            return "unix-abstract:" + path[1:]
    return None


def measure_relay_cost(pool, flotilla: MemberProcess, workload: Workload, clients: int, args) -> None:
    """The same put load through the client port (sniffer + relay in listener.py) and straight to the
    gRPC server's unix socket: the difference is what the relay costs."""
    target = grpc_socket_of(flotilla.proc.pid)
    if target is None:
        print("relay cost: the member's gRPC socket was not found in /proc/net/unix")
        return
    via_port = measure(pool, args.procs, flotilla, workload, clients, args)
    straight = measure(pool, args.procs, _AtAddress(flotilla, target), workload, clients, args)
    for label, m in (
        ("through the client port (relay)", via_port),
        ("straight to the gRPC socket", straight),
    ):
        print(
            f"{workload.name}, {clients} clients, {label:<32}: {m.ops_per_s:6.0f} ops/s, "
            f"p50 {m.p50_ms:6.2f} ms,"
            f" p99 {m.p99_ms:6.2f} ms, server CPU {m.server_cpu_pct:3.0f}%, "
            f"server CPU per op {1e4 * m.server_cpu_pct / max(m.ops_per_s, 1):.0f} us"
        )


class _AtAddress:
    """A member seen at another address (``measure`` needs ``address`` and ``proc``)."""

    def __init__(self, member: MemberProcess, address: str) -> None:
        self.address = address
        self.proc = member.proc


def run_profile(pool, flotilla: MemberProcess | None, args, tmp: Path) -> None:
    workload = WORKLOADS[0]
    clients = args.profile_clients
    if flotilla is not None:
        print("\n=== what the gRPC relay of the client port costs ===")
        measure_relay_cost(pool, flotilla, workload, clients, args)
    profiler = args.profiler
    if profiler == "auto":
        profiler = "py-spy" if _pyspy() else "cprofile"
    print(f"\n=== profile of the Flotilla member: {workload.name}, {clients} clients, {profiler} ===")
    if profiler == "py-spy" and flotilla is not None:
        profile_with_pyspy(pool, flotilla, workload, clients, args, tmp)
    else:
        profile_with_cprofile(pool, workload, clients, args, tmp)


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each run (default 1)")
    p.add_argument("--clients", type=int, nargs="+", default=[16, 64], help="concurrent requests (16 64)")
    p.add_argument("--procs", type=int, default=1, help="client processes sharing the load (default 1)")
    p.add_argument("--channels", type=int, default=4, help="gRPC connections per client process (default 4)")
    p.add_argument(
        "--workloads", nargs="+", choices=[w.slug for w in WORKLOADS], default=[w.slug for w in WORKLOADS]
    )
    p.add_argument("--profiler", choices=["auto", "py-spy", "cprofile", "none"], default="auto")
    p.add_argument("--profile-clients", type=int, default=64, help="clients of the profiled put load (64)")
    p.add_argument("--pyspy-flags", default="--gil", help="extra py-spy record flags (default --gil)")
    p.add_argument("--profile-only", action="store_true", help="skip the comparison, only profile")
    p.add_argument("--top", type=int, default=25, help="functions listed per profile table (default 25)")
    p.add_argument("--dir", type=Path, default=None, help="where the data directories go (a temp dir)")
    return p.parse_args(argv)


def compare(pool, etcd: MemberProcess, flotilla: MemberProcess, args) -> None:
    print(
        f"{args.duration:g} s per run after {args.warmup:g} s warm-up; {args.procs} client process(es), "
        f"{args.channels} gRPC connection(s) each; 100-byte values; single members, fsync on\n"
    )
    print(HEADER)
    print("-" * len(HEADER))
    for workload in WORKLOADS:
        if workload.slug not in args.workloads:
            continue
        for clients in args.clients:
            e = measure(pool, args.procs, etcd, workload, clients, args)
            f = measure(pool, args.procs, flotilla, workload, clients, args)
            print(format_row(workload, clients, e, f), flush=True)
    if "range-serializable" in args.workloads:
        measure_grpc_floor(pool, args)
    print(
        "\nratio = flotilla ops/s / etcd ops/s (goal >= 1.0x); "
        "p99 x = flotilla p99 / etcd p99 (goal <= 1.0x);"
        "\nclient CPU% = the load generator's own CPU over the window (100 = one core; the machine has "
        f"{os.cpu_count()})."
    )


def measure_grpc_floor(pool, args) -> None:
    """The same serializable-range load against a grpc.aio server whose handler does nothing: the most any
    Python member on grpc.aio can serve on this machine with this client."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "grpc_echo_server.py"), str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        proc.stdout.readline()
        workload = next(w for w in WORKLOADS if w.slug == "range-serializable")
        for clients in args.clients:
            m = measure(pool, args.procs, _AtAddressOf(proc, f"127.0.0.1:{port}"), workload, clients, args)
            print(
                f"{'grpc.aio echo floor':<19} {clients:>7} |            {m.ops_per_s:8.0f}         "
                f"(a handler that does nothing; p50/p99 {m.p50_ms:.2f}/{m.p99_ms:.2f} ms, "
                f"server CPU {m.server_cpu_pct:.0f}%)",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(10)


class _AtAddressOf:
    def __init__(self, proc: subprocess.Popen, address: str) -> None:
        self.proc = proc
        self.address = address


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.profile_only and not real_etcd_available():
        sys.exit("Debian's etcd is not installed (/usr/bin/etcd): apt-get install etcd-server etcd-client")
    tmp = Path(tempfile.mkdtemp(prefix="flotilla-bench-", dir=args.dir))
    members: list[MemberProcess] = []
    # spawn, not fork: client processes must not inherit this process's threads or gRPC state.
    pool = multiprocessing.get_context("spawn").Pool(args.procs)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # clean up on SIGTERM too
    try:
        flotilla = None
        if not args.profile_only:
            members.append(start_member("etcd", tmp))
            members.append(flotilla := start_member("flotilla", tmp))
            if any(w.startswith("range") for w in args.workloads):
                for member in members:
                    prefill_ranges(member)
            compare(pool, members[0], flotilla, args)
        elif args.profiler in ("auto", "py-spy") and _pyspy():
            members.append(flotilla := start_member("flotilla", tmp))
        if args.profiler != "none":
            run_profile(pool, flotilla, args, tmp)
    finally:
        signal.signal(signal.SIGTERM, previous)
        pool.terminate()
        pool.join()
        for member in members:
            member.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

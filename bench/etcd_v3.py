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
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import (  # noqa: E402
    HEADER,
    REQUEST_TIMEOUT_S,
    ROOT,
    START_DELAY_S,
    VALUE,
    LoadResult,
    Measurement,
    Recorder,
    add_common_args,
    bench_run,
    format_row,
    profile_member,
    pyspy,
    run_specs,
    run_window,
    shares,
    sleep_until,
)
from processes import MemberProcess, free_port, start_member  # noqa: E402

PUT_KEYS = 10_000
RANGE_KEYS = 1_000
PREFILL_TXN_OPS = 100


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


async def _grpc_load(spec: LoadSpec, rec: Recorder, stop_at: float) -> None:
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
        await sleep_until(spec.start_at)
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


async def _gateway_load(spec: LoadSpec, rec: Recorder, stop_at: float) -> None:
    import aiohttp

    url = f"http://{spec.address}/v3/kv/put"
    bodies = _gateway_bodies(spec.first_key)
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=spec.clients, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(i: int) -> None:
            n, k = len(bodies), i * 7919
            await sleep_until(spec.start_at)
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


async def _run_load(spec: LoadSpec) -> LoadResult:
    load = _grpc_load if spec.workload.transport == "grpc" else _gateway_load

    def started(start: float, rec: Recorder, stop_at: float):
        return load(dataclasses.replace(spec, start_at=start), rec, stop_at)

    return await run_window(spec.start_at, spec.warmup_s, spec.duration_s, started)


def run_load_process(spec: LoadSpec) -> LoadResult:
    """Entry point of a client process (picklable for multiprocessing)."""
    return asyncio.run(_run_load(spec))


# --- measuring servers ---------------------------------------------------------------------------------


def measure(pool, procs: int, member: MemberProcess, workload: Workload, clients: int, args) -> Measurement:
    """Runs one workload against one member with ``clients`` requests in flight, split over the pool."""
    start_at = time.time() + START_DELAY_S
    specs = [
        LoadSpec(
            member.address, workload, share, max(1, min(args.channels, share)), start_at, args.warmup,
            args.duration, p * 997,
        )
        for p, share in shares(clients, procs)
    ]  # fmt: skip
    return run_specs(pool, run_load_process, specs, member, start_at, args)[0]


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


# --- profiling the Flotilla member ---------------------------------------------------------------------


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

    def measure_member(member: MemberProcess) -> Measurement:
        return measure(pool, args.procs, member, workload, clients, args)

    profile_member(flotilla, measure_member, f"{workload.name}, {clients} clients", args, tmp, [])


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p, [w.slug for w in WORKLOADS], duration_s=5.0)
    p.add_argument("--clients", type=int, nargs="+", default=[16, 64], help="concurrent requests (16 64)")
    p.add_argument("--channels", type=int, default=4, help="gRPC connections per client process (default 4)")
    p.add_argument("--profile-clients", type=int, default=64, help="clients of the profiled put load (64)")
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
    with bench_run(args, "flotilla-bench-") as run:
        flotilla = None
        if not args.profile_only:
            run.members.append(start_member("etcd", run.tmp))
            run.members.append(flotilla := start_member("flotilla", run.tmp))
            if any(w.startswith("range") for w in args.workloads):
                for member in run.members:
                    prefill_ranges(member)
            compare(run.pool, run.members[0], flotilla, args)
        elif args.profiler in ("auto", "py-spy") and pyspy():
            run.members.append(flotilla := start_member("flotilla", run.tmp))
        if args.profiler != "none":
            run_profile(run.pool, flotilla, args, run.tmp)


if __name__ == "__main__":
    main()

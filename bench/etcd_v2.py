"""etcd v2 keys API throughput, latency and watch fan-out: Flotilla and Debian's etcd 3.4 side by side in
one run, with ratios.

Both servers run as single members with ``--enable-v2=true`` on free loopback ports, each in its own data
directory (the real disk, fsync on). For each workload and worker count the same load runs against etcd,
then against Flotilla, ``--repeat`` times, and the best run of each counts:

- ``put``: ``PUT /v2/keys/bench/k<i>`` with ``value=<100 bytes>`` form-encoded, keys spread over 10,000;
- ``get``: ``GET /v2/keys/bench/k<i>`` of one of 1,000 prefilled keys (served from the member's tree);
- ``get quorum``: the same with ``?quorum=true`` (through raft).

The load generator is etcd_v3.py's (``_load.py``), over HTTP/1.1: ``--procs`` spawned client processes
each run an asyncio loop with one aiohttp keep-alive session and their share of the ``--workers``
concurrent requests (a worker sends its next request as soon as the previous answer arrives). The table
shows the CPU the client processes took next to each server's, so a client-bound row is visible.

With ``put``, the same load then runs against a do-nothing aiohttp handler: the floor of any member that
serves HTTP through aiohttp on this machine.

Watch fan-out: ``--watchers`` (1,000) long-poll watchers (``GET ?wait=true&waitIndex=N`` on one key,
each on its own keep-alive connection) spread over ``--watch-procs`` client processes. Once every watcher
has its response headers (both servers flush them at once), this process PUTs the key; each watcher's
latency is from the PUT's send to its client loop reading the event off the socket (CLOCK_MONOTONIC,
shared by the processes; the watchers are a minimal HTTP/1.1 protocol, not aiohttp, so that parsing
hundreds of responses in one client is not counted as the server's latency). The watchers re-arm and
this repeats ``--watch-rounds`` times. Goal: p99 < 50 ms.

After the tables, the Flotilla member is profiled under the put load (py-spy, or ``--profiler
cprofile``), with etcd_v3.py's summaries (``_load.py``).

    .venv/bin/python bench/etcd_v2.py                        # ~2 minutes
    .venv/bin/python bench/etcd_v2.py --duration 3 --workers 16 --workloads put --watch-rounds 2
    .venv/bin/python bench/etcd_v2.py --second etcd          # etcd on both sides (debugging the bench)

The goal (the issue): Flotilla >= 1.0x etcd's throughput at <= 1.0x its p99, single member.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import json
import os
import socket
import statistics
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import (  # noqa: E402
    HEADER,
    REQUEST_TIMEOUT_S,
    START_DELAY_S,
    VALUE,
    LoadResult,
    Measurement,
    Recorder,
    add_common_args,
    bench_run,
    format_row,
    percentile,
    profile_member,
    pyspy,
    run_specs,
    run_window,
    shares,
    sleep_until,
)
from processes import MemberProcess, free_port, start_member  # noqa: E402

ENABLE_V2 = "--enable-v2=true"
PUT_KEYS = 10_000
GET_KEYS = 1_000
PREFILL_CONCURRENCY = 32
PUT_BODY = b"value=" + VALUE  # 100 ASCII letters: form-encoded as they are
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
WATCH_KEY = "bench/watched"
WATCH_TIMEOUT_S = 15.0
FANOUT_GOAL_P99_MS = 50.0


@dataclass(frozen=True)
class Workload:
    name: str
    op: str  # "put" or "get"
    quorum: bool = False

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "-")


WORKLOADS = (Workload("put", "put"), Workload("get", "get"), Workload("get quorum", "get", quorum=True))


@dataclass(frozen=True)
class LoadSpec:
    """What one client process runs: ``workers`` concurrent requests from ``start_at`` (wall clock) for
    ``warmup_s`` unmeasured then ``duration_s`` measured seconds."""

    address: str
    workload: Workload
    workers: int
    start_at: float
    warmup_s: float
    duration_s: float
    first_key: int


@dataclass
class V2LoadResult(LoadResult):
    """A client process's result, with the requests each of its workers completed in the window."""

    per_worker: list[int] = field(default_factory=list)


@dataclass
class V2Measurement(Measurement):
    """The shared figures plus fairness: the fewest requests a worker completed over the mean (1.0 = every
    worker served alike; a starved connection shows as a low figure)."""

    fairness: float = float("nan")


def monotonic() -> float:
    """A clock every process on the machine shares (perf_counter's reference point is unspecified)."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


# --- the load generator (runs in client processes) -----------------------------------------------------


def _urls(spec: LoadSpec) -> list:
    from yarl import URL

    base = f"http://{spec.address}/v2/keys/bench/k"
    n = PUT_KEYS if spec.workload.op == "put" else GET_KEYS
    query = "?quorum=true" if spec.workload.quorum else ""
    # Parsed once here: aiohttp would parse a string URL on every request, on the client's CPU.
    return [URL(f"{base}{(spec.first_key + i) % n}{query}", encoded=True) for i in range(n)]


async def _http_load(spec: LoadSpec, rec: Recorder, stop_at: float, per_worker: list[int]) -> None:
    import aiohttp

    urls = _urls(spec)
    put = spec.workload.op == "put"
    connector = aiohttp.TCPConnector(limit=spec.workers, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker(i: int) -> None:
            n, k = len(urls), i * 7919
            await sleep_until(spec.start_at)
            while (started := time.perf_counter()) < stop_at:
                try:
                    if put:
                        request = session.put(urls[k % n], data=PUT_BODY, headers=FORM_HEADERS)
                    else:
                        request = session.get(urls[k % n])
                    async with request as response:
                        body = await response.read()
                        if response.status not in (200, 201):
                            rec.error(RuntimeError(f"HTTP {response.status}: {body[:200]!r}"))
                except (TimeoutError, aiohttp.ClientError) as error:
                    rec.error(error)
                ended = time.perf_counter()
                rec.record(started, ended)
                if started >= rec.measure_from and ended <= rec.measure_until:
                    per_worker[i] += 1
                k += 1

        await asyncio.gather(*(worker(i) for i in range(spec.workers)))


async def _run_load(spec: LoadSpec) -> V2LoadResult:
    per_worker = [0] * spec.workers

    def started(start: float, rec: Recorder, stop_at: float):
        return _http_load(dataclasses.replace(spec, start_at=start), rec, stop_at, per_worker)

    result = await run_window(spec.start_at, spec.warmup_s, spec.duration_s, started)
    return V2LoadResult(**vars(result), per_worker=per_worker)


def run_load_process(spec: LoadSpec) -> V2LoadResult:
    """Entry point of a client process (picklable for multiprocessing)."""
    return asyncio.run(_run_load(spec))


def measure(pool, procs: int, member, workload: Workload, workers: int, args) -> V2Measurement:
    """Runs one workload against one member with ``workers`` requests in flight, split over the pool."""
    start_at = time.time() + START_DELAY_S
    specs = [
        LoadSpec(member.address, workload, share, start_at, args.warmup, args.duration, p * 997)
        for p, share in shares(workers, procs)
    ]
    measurement, results = run_specs(pool, run_load_process, specs, member, start_at, args)
    per_worker = [n for r in results for n in r.per_worker]
    fairness = min(per_worker) * len(per_worker) / max(1, sum(per_worker))
    return V2Measurement(**vars(measurement), fairness=fairness)


async def _prefill(address: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:

        async def put_range(first: int) -> None:
            for i in range(first, GET_KEYS, PREFILL_CONCURRENCY):
                url = f"http://{address}/v2/keys/bench/k{i}"
                async with session.put(url, data=PUT_BODY, headers=FORM_HEADERS) as response:
                    body = await response.read()
                    if response.status not in (200, 201):
                        raise RuntimeError(f"prefill PUT {url}: HTTP {response.status} {body[:200]!r}")

        await asyncio.gather(*(put_range(first) for first in range(PREFILL_CONCURRENCY)))


def prefill_gets(member) -> None:
    """Puts the GET_KEYS keys the get workloads read."""
    asyncio.run(_prefill(member.address))


# --- watch fan-out -------------------------------------------------------------------------------------


class _LongPoll(asyncio.Protocol):
    """One watcher's keep-alive connection: HTTP/1.1 long polls one after the other, parsed just enough to
    time them. The arrival time is taken in ``data_received``, when the loop reads the socket, so that
    the other watchers' processing in this client process is not counted as the server's latency."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.header_end = -1
        self.status = 0
        self.chunked = False
        self.length: int | None = None
        self.armed: asyncio.Future | None = None
        self.arrived: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def poll(self, request: bytes) -> None:
        """Sends one request; ``armed`` resolves with its response headers, ``arrived`` with
        (arrival time, status, body) once the body is complete."""
        loop = asyncio.get_running_loop()
        self.armed, self.arrived = loop.create_future(), loop.create_future()
        self.buffer.clear()
        self.header_end = -1
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        now = monotonic()
        self.buffer += data
        if self.header_end < 0 and not self._parse_head():
            return
        body = self._body()
        if body is not None and not self.arrived.done():
            self.arrived.set_result((now, self.status, body))

    def _parse_head(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        self.header_end = end + 4
        head = bytes(self.buffer[:end]).decode("latin-1").lower().split("\r\n")
        self.status = int(head[0].split(" ", 2)[1])
        fields = dict(line.split(":", 1) for line in head[1:] if ":" in line)
        self.chunked = "chunked" in fields.get("transfer-encoding", "")
        length = fields.get("content-length")
        self.length = int(length) if length is not None else None
        if not self.armed.done():
            self.armed.set_result(None)
        return True

    def _body(self) -> bytes | None:
        """The response body once complete (chunked or Content-Length), else None."""
        raw = memoryview(self.buffer)[self.header_end :]
        if not self.chunked:
            length = self.length or 0
            return bytes(raw[:length]) if len(raw) >= length else None
        body, at = bytearray(), 0
        while (line_end := bytes(raw[at : at + 20]).find(b"\r\n")) >= 0:
            size = int(bytes(raw[at : at + line_end]).split(b";")[0], 16)
            start = at + line_end + 2
            if len(raw) < start + size + 2:
                return None
            if size == 0:
                return bytes(body)
            body += raw[start : start + size]
            at = start + size + 2
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.armed, self.arrived):
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"connection lost: {exc}"))


async def _round(conn, polls: list[_LongPoll], host: str, wait_index: int) -> None:
    """One round in a watch client process: a long poll from ``wait_index`` on every connection; reports
    ("armed", n) once each has its response headers (or after WATCH_TIMEOUT_S), then ("done", arrival
    times, failures, first failure) once every event arrived (or timed out)."""
    request = (
        f"GET /v2/keys/{WATCH_KEY}?wait=true&waitIndex={wait_index} HTTP/1.1\r\nHost: {host}\r\n\r\n"
    ).encode()
    for poll in polls:
        poll.poll(request)
    armed, _ = await asyncio.wait([p.armed for p in polls], timeout=WATCH_TIMEOUT_S)
    conn.send(("armed", sum(1 for f in armed if f.exception() is None)))
    await asyncio.wait([p.arrived for p in polls], timeout=WATCH_TIMEOUT_S)
    arrivals, failures = array("d"), []
    for poll in polls:
        if not poll.arrived.done():
            failures.append(f"no event within {WATCH_TIMEOUT_S:g} s")
            poll.transport.abort()  # a late answer must not be read as the next round's
        elif poll.arrived.exception() is not None:
            failures.append(str(poll.arrived.exception())[:300])
        else:
            arrived, status, body = poll.arrived.result()
            if status != 200:
                failures.append(f"HTTP {status}: {body[:200]!r}")
            elif (index := json.loads(body)["node"]["modifiedIndex"]) != wait_index:
                failures.append(f"event of index {index}, expected {wait_index}")
            else:
                arrivals.append(arrived)
    conn.send(("done", arrivals, len(failures), failures[0] if failures else ""))


async def _watch_client(conn, address: str, watchers: int) -> None:
    loop = asyncio.get_running_loop()
    host, port = address.rsplit(":", 1)
    connecting = asyncio.Semaphore(32)  # not 250 SYNs at once: a full accept backlog delays them by 1 s

    async def connect() -> _LongPoll:
        async with connecting:
            _, poll = await asyncio.wait_for(
                loop.create_connection(_LongPoll, host, int(port)), WATCH_TIMEOUT_S
            )
            return poll

    polls: list[_LongPoll] = []
    try:
        while True:
            command = conn.recv()  # blocks the loop on purpose: no watcher is running between rounds
            if command[0] == "stop":
                return
            # Opened (again) before each round: one per watcher, as a long poll holds its connection.
            polls = [p for p in polls if not p.transport.is_closing()]
            polls += await asyncio.gather(*(connect() for _ in range(watchers - len(polls))))
            await _round(conn, polls, address, command[1])
    finally:
        for poll in polls:
            poll.transport.close()


def run_watch_process(conn, address: str, watchers: int) -> None:
    """Entry point of a watch client process: rounds on command ("arm", wait_index) until ("stop",)."""
    asyncio.run(_watch_client(conn, address, watchers))


@dataclass
class FanoutResult:
    latencies_ms: list[float]
    expected: int
    armed: int
    errors: int
    first_error: str
    round_max_ms: list[float]
    put_ms: list[float] = field(default_factory=list)


def _v2_request(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None):
    headers = FORM_HEADERS if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    if response.status not in (200, 201):
        raise RuntimeError(f"{method} {path}: HTTP {response.status} {data[:200]!r}")
    return response, data


def measure_fanout(context, member, args) -> FanoutResult:
    """``args.watch_rounds`` rounds of: every watcher armed, one PUT, every event's latency from its send."""
    procs = max(1, min(args.watch_procs, args.watchers))
    shares = [args.watchers // procs + (1 if p < args.watchers % procs else 0) for p in range(procs)]
    pipes, clients = [], []
    host, port = member.address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT_S)
    result = FanoutResult([], 0, 0, 0, "", [])
    try:
        for share in shares:
            ours, theirs = context.Pipe()
            client = context.Process(target=run_watch_process, args=(theirs, member.address, share))
            client.start()
            pipes.append(ours)
            clients.append(client)
        path = f"/v2/keys/{WATCH_KEY}"
        response, _ = _v2_request(connection, "PUT", path, b"value=0")
        index = int(response.getheader("X-Etcd-Index"))
        for round_no in range(1, args.watch_rounds + 1):
            for pipe in pipes:
                pipe.send(("arm", index + 1))
            result.armed += sum(_receive(pipe, "armed")[1] for pipe in pipes)
            result.expected += args.watchers
            time.sleep(0.05)  # headers are out; let the server's side settle before the event
            sent = monotonic()
            response, _ = _v2_request(connection, "PUT", path, b"value=%d" % round_no)
            result.put_ms.append(1000 * (monotonic() - sent))
            index = int(response.getheader("X-Etcd-Index"))
            round_ms = []
            for pipe in pipes:
                _, arrivals, errors, first_error = _receive(pipe, "done")
                round_ms.extend(1000 * (t - sent) for t in arrivals)
                result.errors += errors
                result.first_error = result.first_error or first_error
            result.latencies_ms.extend(round_ms)
            result.round_max_ms.append(max(round_ms, default=float("nan")))
        for pipe in pipes:
            pipe.send(("stop",))
    finally:
        connection.close()
        for client in clients:
            client.join(10)
            if client.is_alive():
                client.kill()
                client.join()
    return result


def _receive(pipe, kind: str):
    if not pipe.poll(2 * WATCH_TIMEOUT_S + 5):
        raise RuntimeError(f"a watch client process sent no {kind!r} report")
    message = pipe.recv()
    assert message[0] == kind, message
    return message


FANOUT_HEADER = (
    f"{'server':<9} {'watchers':>8} {'rounds':>6} | {'armed':>6} {'events':>6} {'errors':>6} | "
    f"{'PUT ms':>6} | {'min ms':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} | {'max per round (ms)':<32} | "
    f"goal p99 < {FANOUT_GOAL_P99_MS:g} ms"
)


def format_fanout(name: str, result: FanoutResult, args) -> str:
    ordered = sorted(result.latencies_ms)
    p99 = percentile(ordered, 0.99)
    complete = len(ordered) == result.expected and not result.errors
    goal = "met" if complete and p99 < FANOUT_GOAL_P99_MS else "not met"
    rounds = " ".join(f"{m:.0f}" for m in result.round_max_ms)
    error = f"  {result.first_error}" if result.first_error else ""
    nan = float("nan")
    put_ms = statistics.median(result.put_ms or [nan])
    return (
        f"{name:<9} {args.watchers:>8} {args.watch_rounds:>6} | {result.armed:>6} {len(ordered):>6} "
        f"{result.errors:>6} {put_ms:>6.1f} | {min(ordered, default=nan):>7.1f} "
        f"{percentile(ordered, 0.5):>7.1f} {p99:>7.1f} {max(ordered, default=nan):>7.1f} | "
        f"{rounds:<32} | {goal}{error}"
    )


# --- profiling the Flotilla member ---------------------------------------------------------------------


def run_profile(pool, flotilla: MemberProcess | None, args, tmp: Path) -> None:
    workload, workers = WORKLOADS[0], args.profile_workers

    def measure_member(member: MemberProcess) -> Measurement:
        return measure(pool, args.procs, member, workload, workers, args)

    profile_member(flotilla, measure_member, f"{workload.name}, {workers} workers", args, tmp, [ENABLE_V2])


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(p, [w.slug for w in WORKLOADS], duration_s=3.0)
    p.add_argument("--repeat", type=int, default=2, help="runs per row and server, best kept (default 2)")
    p.add_argument("--workers", type=int, nargs="+", default=[16, 64], help="concurrent requests (16 64)")
    p.add_argument("--watchers", type=int, default=1000, help="long-poll watchers of the fan-out (1000)")
    p.add_argument("--watch-procs", type=int, default=4, help="client processes of the watchers (4)")
    p.add_argument("--watch-rounds", type=int, default=5, help="PUTs the watchers wait for (5; 0 skips)")
    p.add_argument(
        "--second", choices=["flotilla", "etcd"], default="flotilla",
        help="the server compared with etcd ('etcd': the bench against itself, to judge the bench)",
    )  # fmt: skip
    p.add_argument("--no-floor", action="store_true", help="skip the aiohttp floor rows")
    p.add_argument("--profile-workers", type=int, default=64, help="workers of the profiled put load (64)")
    return p.parse_args(argv)


def compare(pool, context, etcd: MemberProcess, second: MemberProcess, args) -> None:
    print(
        f"{args.duration:g} s per run after {args.warmup:g} s warm-up; {args.procs} client process(es); "
        f"v2 keys API over HTTP/1.1 keep-alive; 100-byte values; single members, fsync on; "
        f"'{args.second}' in the flotilla columns\n"
    )
    header = HEADER.replace("clients |", "workers |", 1)
    print(header)
    print("-" * len(header))
    for workload in WORKLOADS:
        if workload.slug not in args.workloads:
            continue
        for workers in args.workers:
            runs: tuple[list[V2Measurement], list[V2Measurement]] = ([], [])
            for _ in range(args.repeat):  # alternated, so a disturbance of the machine hits both servers
                runs[0].append(measure(pool, args.procs, etcd, workload, workers, args))
                runs[1].append(measure(pool, args.procs, second, workload, workers, args))
            e, f = (max(r, key=lambda m: m.ops_per_s) for r in runs)
            extra = f"  max ms e/f {e.max_ms:.0f}/{f.max_ms:.0f}, fair e/f {e.fairness:.2f}/{f.fairness:.2f}"
            if args.repeat > 1:
                extra += "; runs e {} f {}".format(*(" ".join(f"{m.ops_per_s:.0f}" for m in r) for r in runs))
            print(format_row(workload, workers, e, f) + extra, flush=True)
    if "put" in args.workloads and not args.no_floor:
        measure_aiohttp_floor(pool, context, args)
    print(
        "\nratio = flotilla ops/s / etcd ops/s (goal >= 1.0x); "
        "p99 x = flotilla p99 / etcd p99 (goal <= 1.0x);"
        "\nmax ms = the slowest request; fair = the fewest requests a worker completed / the mean (1 = fair);"
        f"\neach row: the best of {args.repeat} alternated run(s) per server (runs: every run's ops/s);"
        "\nclient CPU% = the load generator's own CPU over the window (100 = one core; the machine has "
        f"{os.cpu_count()})."
    )


def run_aiohttp_floor(port: int) -> None:
    """Entry point of the floor server: aiohttp answering every /v2/keys request with a fixed etcd-like
    event and doing nothing else — the most a member serving HTTP through aiohttp can do here."""
    from aiohttp import web

    body = (
        b'{"action":"set","node":{"key":"/bench/k1","value":"'
        + VALUE
        + b'","modifiedIndex":9,"createdIndex":9}}\n'
    )

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json", headers={"X-Etcd-Index": "9"})

    app = web.Application()
    app.router.add_route("*", "/v2/keys/{key:.*}", handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def measure_aiohttp_floor(pool, context, args) -> None:
    """The put load against ``run_aiohttp_floor``, one run per worker count."""
    port = free_port()
    server = context.Process(target=run_aiohttp_floor, args=(port,))
    server.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or not server.is_alive():
                    print("aiohttp floor: the server did not start")
                    return
                time.sleep(0.1)
        floor = SimpleNamespace(address=f"127.0.0.1:{port}", proc=SimpleNamespace(pid=server.pid))
        for workers in args.workers:
            m = measure(pool, args.procs, floor, WORKLOADS[0], workers, args)
            print(
                f"{'aiohttp floor':<19} {workers:>7} |            {m.ops_per_s:8.0f}         "
                f"(put to a handler that does nothing; p50/p99 {m.p50_ms:.2f}/{m.p99_ms:.2f} ms, "
                f"client CPU {m.client_cpu_pct:.0f}%, server CPU {m.server_cpu_pct:.0f}%)",
                flush=True,
            )
    finally:
        server.terminate()
        server.join(10)
        if server.is_alive():
            server.kill()
            server.join()


def compare_fanout(context, etcd: MemberProcess, second: MemberProcess, args) -> None:
    print(
        f"\n=== watch fan-out: {args.watchers} long polls on one key over {args.watch_procs} client "
        f"processes, one PUT per round; latency from the PUT's send to each event's arrival ==="
    )
    print(FANOUT_HEADER)
    print("-" * len(FANOUT_HEADER))
    results = []
    for name, member in (("etcd", etcd), (args.second, second)):
        results.append(measure_fanout(context, member, args))
        print(format_fanout(name, results[-1], args), flush=True)
    e, f = (percentile(sorted(r.latencies_ms), 0.99) for r in results)
    print(f"p99 x = {args.second} p99 / etcd p99 = {f / e if e else float('nan'):.2f}x")
    print(
        "PUT ms = the watched PUT's own latency (median over rounds); min = the first event's arrival; "
        "max - min = the time to hand the event to every watcher"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with bench_run(args, "flotilla-bench-v2-") as run:
        flotilla = None
        if not args.profile_only:
            run.members.append(start_member("etcd", run.tmp, ENABLE_V2))
            run.members.append(second := start_member(args.second, run.tmp, ENABLE_V2))
            flotilla = second if args.second == "flotilla" else None
            if any(w.startswith("get") for w in args.workloads):
                for member in run.members:
                    prefill_gets(member)
            compare(run.pool, run.context, run.members[0], second, args)
            if args.watch_rounds > 0:
                compare_fanout(run.context, run.members[0], second, args)
        elif args.profiler in ("auto", "py-spy") and pyspy():
            run.members.append(flotilla := start_member("flotilla", run.tmp, ENABLE_V2))
        if args.profiler != "none" and (flotilla is not None or args.profile_only):
            run_profile(run.pool, flotilla, args, run.tmp)


if __name__ == "__main__":
    main()

"""What etcd_v3.py and etcd_v2.py share: the load generator's clock and recorder, measuring a member's CPU
over the window, the comparison table, profiling the Flotilla member (py-spy or cProfile, with summaries),
the common command-line options and the run's setup and clean-up. Each script keeps its own workloads,
requests and tables.

A load runs in ``--procs`` spawned client processes; each gets a spec whose ``start_at`` is wall clock
(shared by all processes), runs its requests from then for ``warmup_s`` unmeasured then ``duration_s``
measured seconds (``run_window``), and returns a ``LoadResult``. The main process measures the server's
CPU over the same window (``run_specs``).
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from processes import MemberProcess, free_port, real_etcd_available  # noqa: E402

VALUE = b"v" * 100
REQUEST_TIMEOUT_S = 10.0
START_DELAY_S = 0.5  # lets every client process connect before the clock starts


@dataclass
class LoadResult:
    ops: int
    errors: int
    client_cpu_s: float
    latencies_s: array
    first_error: str = ""


# --- the load generator (runs in client processes) -----------------------------------------------------


class Recorder:
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

    def result(self, client_cpu_s: float) -> LoadResult:
        return LoadResult(len(self.latencies), self.errors, client_cpu_s, self.latencies, self.first_error)


async def sleep_until(perf_deadline: float) -> None:
    delay = perf_deadline - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


# load(start, recorder, stop_at): sends requests from perf_counter time ``start`` until ``stop_at``.
Load = Callable[[float, Recorder, float], Awaitable[None]]


async def run_window(start_at: float, warmup_s: float, duration_s: float, load: Load) -> LoadResult:
    """Runs ``load`` from wall-clock ``start_at`` through the warm-up and the measured window; the result
    has the window's latencies and this process's CPU over it. A load that fails (e.g. no connection) is
    an error in the result, not a crash of the run."""
    # The times given are wall clock (shared by all processes); perf_counter is what we measure with.
    offset = time.perf_counter() - time.time()
    start = start_at + offset
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s
    rec = Recorder(measure_from, stop_at)
    task = asyncio.ensure_future(load(start, rec, stop_at))
    await sleep_until(measure_from)
    cpu_from = time.process_time()
    await sleep_until(stop_at)
    cpu_s = time.process_time() - cpu_from
    try:
        await task
    except Exception as error:
        rec.error(error)
    return rec.result(cpu_s)


def shares(total: int, procs: int) -> list[tuple[int, int]]:
    """``(process index, its share)`` of ``total`` concurrent requests, for the processes that get any."""
    split = [(p, total // procs + (1 if p < total % procs else 0)) for p in range(procs)]
    return [(p, share) for p, share in split if share]


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
    max_ms: float = float("nan")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run_specs(pool, entry: Callable, specs: list, member, start_at: float, args) -> tuple[Measurement, list]:
    """Runs ``entry(spec)`` for each spec in the pool's client processes while measuring ``member``'s CPU
    (``member`` needs ``proc.pid``) over the window; returns the measurement and the processes' results."""
    pending = pool.map_async(entry, specs)
    time.sleep(max(0.0, start_at + args.warmup - time.time()))
    cpu_from = process_cpu_s(member.proc.pid)
    time.sleep(max(0.0, start_at + args.warmup + args.duration - time.time()))
    server_cpu_s = process_cpu_s(member.proc.pid) - cpu_from
    results: list[LoadResult] = pending.get(timeout=args.warmup + args.duration + 60)
    latencies = sorted(x for r in results for x in r.latencies_s)
    measurement = Measurement(
        ops_per_s=len(latencies) / args.duration,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        errors=sum(r.errors for r in results),
        client_cpu_pct=100 * sum(r.client_cpu_s for r in results) / args.duration,
        server_cpu_pct=100 * server_cpu_s / args.duration,
        first_error=next((r.first_error for r in results if r.first_error), ""),
        max_ms=1000 * latencies[-1] if latencies else float("nan"),
    )
    return measurement, results


# --- the table -----------------------------------------------------------------------------------------

HEADER = (
    f"{'workload':<19} {'clients':>7} | {'etcd ops/s':>10} {'flotilla':>9} {'ratio':>6} | "
    f"{'etcd p50/p99 ms':>16} {'flotilla p50/p99':>17} {'p99 x':>6} | {'client CPU% e/f':>15} "
    f"{'server CPU% e/f':>15} | goal"
)


def format_row(workload, clients: int, etcd: Measurement, flot: Measurement) -> str:
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


def pyspy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def print_thread_cpu(before: dict[str, float], after: dict[str, float], seconds: float) -> None:
    print(f"\nCPU of the Flotilla member's threads over {seconds:.0f} s (% of one core)")
    rows = sorted(((after[t] - before.get(t, 0.0), t) for t in after), reverse=True)
    for used, name in rows:
        if used > 0:
            print(f"  {100 * used / seconds:5.1f}%  {name}")


# measure(member): one run of the profiled load against ``member``.
MeasureMember = Callable[[MemberProcess], Measurement]


def profile_with_pyspy(member: MemberProcess, measure: MeasureMember, args, tmp: Path) -> None:
    raw = tmp / "pyspy.txt"
    seconds = args.warmup + args.duration + START_DELAY_S
    spy = subprocess.Popen(
        [pyspy(), "record", "--pid", str(member.proc.pid), "--rate", "200", "--duration", str(int(seconds)),
         "--format", "raw", "--nolineno", "--threads", "--output", str(raw), *args.pyspy_flags.split()],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        threads_before = thread_cpu_s(member.proc.pid)
        m = measure(member)
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


def profile_with_cprofile(measure: MeasureMember, args, tmp: Path, member_flags: list[str]) -> None:
    """Profiles a separate member (started with ``member_flags``) under cProfile; it writes its profile
    when SIGTERM stops it."""
    import pstats

    member = CProfiledMember("flotilla", tmp / "cprofiled", free_port(), free_port(), member_flags)
    member.profile_path = tmp / "flotilla.prof"
    member.start()
    try:
        threads_before = thread_cpu_s(member.proc.pid)
        m = measure(member)
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


def profile_member(
    flotilla: MemberProcess | None, measure: MeasureMember, what: str, args, tmp: Path, flags: list[str]
) -> None:
    """``--profiler``'s choice: py-spy on the running ``flotilla`` member (auto: if py-spy is installed),
    otherwise cProfile on a member of its own."""
    profiler = args.profiler
    if profiler == "auto":
        profiler = "py-spy" if pyspy() else "cprofile"
    print(f"\n=== profile of the Flotilla member: {what}, {profiler} ===")
    if profiler == "py-spy" and flotilla is not None:
        profile_with_pyspy(flotilla, measure, args, tmp)
    else:
        profile_with_cprofile(measure, args, tmp, flags)


# --- command line and the run --------------------------------------------------------------------------


def add_common_args(p: argparse.ArgumentParser, workload_slugs: list[str], duration_s: float) -> None:
    """The options both scripts take: the window, client processes, workloads, profiling, the data dir."""
    default = f"(default {duration_s:g})"
    p.add_argument("--duration", type=float, default=duration_s, help=f"measured seconds per run {default}")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each run (default 1)")
    p.add_argument("--procs", type=int, default=1, help="client processes sharing the load (default 1)")
    p.add_argument("--workloads", nargs="+", choices=workload_slugs, default=workload_slugs)
    p.add_argument("--profiler", choices=["auto", "py-spy", "cprofile", "none"], default="auto")
    p.add_argument("--pyspy-flags", default="--gil", help="extra py-spy record flags (default --gil)")
    p.add_argument("--profile-only", action="store_true", help="skip the comparison, only profile")
    p.add_argument("--top", type=int, default=25, help="functions listed per profile table (default 25)")
    p.add_argument("--dir", type=Path, default=None, help="where the data directories go (a temp dir)")


@contextmanager
def bench_run(args, prefix: str) -> Iterator[SimpleNamespace]:
    """A run's setup and clean-up: refuses to start without Debian's etcd (unless ``--profile-only``);
    yields ``context`` (spawn), ``pool`` (``--procs`` client processes), ``tmp`` (a data dir) and
    ``members`` (a list the run appends its members to); stops them all, even on SIGTERM."""
    if not args.profile_only and not real_etcd_available():
        sys.exit("Debian's etcd is not installed (/usr/bin/etcd): apt-get install etcd-server etcd-client")
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=args.dir))
    members: list[MemberProcess] = []
    # spawn, not fork: client processes must not inherit this process's threads or gRPC state.
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(args.procs)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # clean up on SIGTERM too
    try:
        yield SimpleNamespace(context=context, pool=pool, tmp=tmp, members=members)
    finally:
        signal.signal(signal.SIGTERM, previous)
        pool.terminate()
        pool.join()
        for member in members:
            member.stop()
        shutil.rmtree(tmp, ignore_errors=True)

"""Start and stop N units (500 by default) on a real `flotilla systemd` daemon; seconds and memory per unit.

Each unit is a `Type=simple` service whose main process is `/bin/sleep`. The script starts a fresh daemon
under a temporary root, writes the units, then measures:

- start: all N start jobs sent at once (as fleet's agent does after a reboot) until every job answered
  `done` and every unit is active (running);
- stop: all N stop jobs at once until every unit is inactive and no process of any unit is left;
- memory: the daemon's RSS before loading the units and with all N running (per unit = the difference / N),
  and the units' own processes (RSS of the sleeps, which a real service replaces with its own footprint).

Also `--sequential` for one job at a time (systemctl in a shell loop), and `--cgroups/--no-cgroups`.

    .venv/bin/python bench/units_start_stop.py              # 500 units, concurrent jobs
    .venv/bin/python bench/units_start_stop.py -n 100 --sequential
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flotilla.systemd import Layout, ManagerClient


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def wait_socket(layout: Layout, process: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited with {process.returncode}")
        if layout.socket_path.exists():
            try:
                async with ManagerClient(layout.root) as client:
                    await client.ping()
                return
            except Exception:
                pass
        await asyncio.sleep(0.05)
    raise SystemExit("the daemon did not answer")


async def run_jobs(client: ManagerClient, verb: str, names: list[str], sequential: bool) -> float:
    method = getattr(client, f"{verb}_unit")
    started = time.perf_counter()
    if sequential:
        results = [await method(n) for n in names]
    else:
        results = await asyncio.gather(*(method(n) for n in names))
    elapsed = time.perf_counter() - started
    bad = [r for r in results if r.result != "done"]
    if bad:
        raise SystemExit(f"{len(bad)} {verb} jobs failed, e.g. {bad[0]}")
    return elapsed


async def bench(count: int, sequential: bool, cgroups: bool) -> None:
    root = Path(tempfile.mkdtemp(prefix="flotilla-bench-units-"))
    layout = Layout.at(root)
    layout.etc_units.mkdir(parents=True)
    names = [f"bench-{i:04d}.service" for i in range(count)]
    for name in names:
        (layout.etc_units / name).write_text(
            f"[Unit]\nDescription=bench {name}\n[Service]\nExecStart=/bin/sleep 100000\n"
        )
    args = [sys.executable, "-m", "flotilla", "systemd", "--root", str(root)]
    if not cgroups:
        args.append("--no-cgroups")
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_socket(layout, process)
        await asyncio.sleep(0.5)
        rss_before = rss_kib(process.pid)
        timeout = None
        async with ManagerClient(root, timeout_s=timeout) as client:
            start_s = await run_jobs(client, "start", names, sequential)
            statuses = await client.list_units()
            running = [s for s in statuses if s.name.startswith("bench-") and s.sub_state == "running"]
            rss_running = rss_kib(process.pid)
            unit_rss = sum(rss_kib(s.main_pid) for s in running if s.main_pid)
            stop_s = await run_jobs(client, "stop", names, sequential)
            leftover = [s for s in await client.list_units() if s.name.startswith("bench-")]
        mode = "sequential" if sequential else "concurrent"
        print(f"units: {count} ({mode} jobs, cgroups {'on' if cgroups else 'off'}); {len(running)} ran")
        for label, seconds in (("start", start_s), ("stop ", stop_s)):
            per_unit_ms = seconds / count * 1000
            rate = count / seconds
            print(f"{label}: {seconds:.2f} s total, {per_unit_ms:.2f} ms per unit ({rate:.0f} units/s)")
        print(
            f"daemon RSS: {rss_before / 1024:.1f} MiB idle, {rss_running / 1024:.1f} MiB with {count} "
            "running: "
            f"{(rss_running - rss_before) / count:.1f} KiB per unit"
        )
        print(f"unit processes: {unit_rss / max(1, len(running)):.0f} KiB RSS each (/bin/sleep)")
        if leftover:
            print(f"WARNING: {len(leftover)} units still loaded as active after stop")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        subprocess.run(["rm", "-rf", str(root)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--units", type=int, default=500)
    parser.add_argument("--sequential", action="store_true", help="one job at a time")
    parser.add_argument("--no-cgroups", action="store_true", help="track processes by environment tags")
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("note: not root; cgroup tracking may be unavailable", file=sys.stderr)
    asyncio.run(bench(options.units, options.sequential, not options.no_cgroups))


if __name__ == "__main__":
    main()

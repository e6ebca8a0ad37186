"""3-member Flotilla vs 3-member Debian etcd 3.4, side by side in one run, on loopback: v3 puts (to the
leader, and spread over every member), v2 PUTs, linearizable v3 ranges, at 16 and 64 clients; then Debian's
``etcdctl check perf --load=m`` against both; then a py-spy profile of the Flotilla leader under puts.

Each load runs in its own client process (grpc.aio or aiohttp, 2 connections per member) for ``--seconds``
after a 1 s warm-up; Flotilla and etcd rows alternate so both see the same machine.

    .venv/bin/python bench/etcd_cluster.py                 # ~4 min
    .venv/bin/python bench/etcd_cluster.py --quick         # 2 s loads, no check perf, no profile
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "src"))

from processes import MemberProcess, real_etcd_available, start_cluster  # noqa: E402

VALUE = b"v" * 100
ROWS = (  # (workload, target)
    ("v3 put", "leader"),
    ("v3 put", "all"),
    ("v2 put", "all"),
    ("v3 range (linearizable)", "all"),
)


# --- the load (runs in a child process: python bench/etcd_cluster.py --load ...) --------------------------
async def _load(workload: str, endpoints: list[str], clients: int, seconds: float) -> tuple[int, list[float]]:
    import aiohttp
    import grpc

    from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc

    latencies: list[float] = []
    measure_from = time.perf_counter() + 1.0
    stop = measure_from + seconds
    if workload.startswith("v2"):
        sessions = [aiohttp.ClientSession(f"http://{e}") for e in endpoints for _ in range(2)]

        async def call(i: int, n: int) -> None:
            async with sessions[i % len(sessions)].put(
                f"/v2/keys/k{n % 10000}", data={"value": "v" * 100}
            ) as r:
                await r.read()
                if r.status >= 300:
                    raise RuntimeError(f"v2 PUT answered {r.status}")
    else:
        channels = [grpc.aio.insecure_channel(e) for e in endpoints for _ in range(2)]
        stubs = [rpc_pb2_grpc.KVStub(c) for c in channels]
        put = workload.startswith("v3 put")

        async def call(i: int, n: int) -> None:
            stub = stubs[i % len(stubs)]
            if put:
                await stub.Put(rpc_pb2.PutRequest(key=b"k%d" % (n % 10000), value=VALUE), timeout=10)
            else:
                await stub.Range(rpc_pb2.RangeRequest(key=b"k%d" % (n % 100)), timeout=10)

    async def client(i: int) -> None:
        n = i * 1000
        while True:
            started = time.perf_counter()
            if started >= stop:
                return
            await call(i, n)
            ended = time.perf_counter()
            if started >= measure_from and ended <= stop:
                latencies.append(ended - started)
            n += 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    if workload.startswith("v2"):
        for session in sessions:
            await session.close()
    return len(latencies), latencies


def _run_load_process(args: argparse.Namespace) -> None:
    count, latencies = asyncio.run(_load(args.load, args.endpoints.split(","), args.clients[0], args.seconds))
    latencies.sort()
    p50 = latencies[len(latencies) // 2] if latencies else 0.0
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    print(f"{count / args.seconds:.1f} {p50 * 1000:.2f} {p99 * 1000:.2f}")


# --- the comparison --------------------------------------------------------------------------------------
def _leader(members: list[MemberProcess]) -> MemberProcess:
    import grpc

    from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc

    for _ in range(100):
        for member in members:
            with grpc.insecure_channel(member.address) as channel:
                try:
                    status = rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=2)
                except grpc.RpcError:
                    continue
                if status.leader == status.header.member_id:
                    return member
        time.sleep(0.1)
    raise RuntimeError("no leader")


def _measure(workload: str, members: list[MemberProcess], target: str, clients: int, seconds: float):
    chosen = [_leader(members)] if target == "leader" else members
    endpoints = ",".join(m.address for m in chosen)
    command = [sys.executable, __file__, "--load", workload, "--endpoints", endpoints,
               "--clients", str(clients), "--seconds", str(seconds)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"load {workload} failed: {out.stderr[-2000:]}")
    ops, p50, p99 = (float(x) for x in out.stdout.split())
    return ops, p50, p99


def _check_perf(members: list[MemberProcess]) -> str:
    env = {**os.environ, "ETCDCTL_API": "3"}
    command = [
        "/usr/bin/etcdctl",
        "--endpoints",
        ",".join(m.address for m in members),
        "check",
        "perf",
        "--load=m",
    ]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in (out.stdout + out.stderr).replace("\r", "\n").splitlines()
             if line.startswith(("PASS", "FAIL"))]  # fmt: skip
    return "; ".join(lines) or f"(no result, exit {out.returncode})"


def _profile_leader(members: list[MemberProcess], seconds: float, tmp: Path) -> None:
    spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: no profile (pip install py-spy)")
        return
    leader = _leader(members)
    raw = tmp / "leader.txt"
    load = subprocess.Popen([sys.executable, __file__, "--load", "v3 put", "--endpoints", leader.address,
                             "--clients", "64", "--seconds", str(seconds + 2)],
                            stdout=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.5)
    subprocess.run([spy, "record", "-p", str(leader.proc.pid), "-d", str(int(seconds)), "-f", "raw",
                    "-o", str(raw),
                    "--nonblocking"], capture_output=True, timeout=seconds + 60)  # fmt: skip
    load.wait(seconds + 60)
    if not raw.exists():
        print("py-spy could not sample the leader")
        return
    own: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        total += int(count)
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
    print(
        f"\nprofile of the Flotilla leader under 64-client v3 puts ({total} samples, all threads; own time):"
    )
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {100 * count / total:5.1f}%  {frame[:110]}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per row (5)")
    p.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    p.add_argument("--quick", action="store_true", help="2 s rows; no check perf, no profile")
    p.add_argument("--load", help=argparse.SUPPRESS)
    p.add_argument("--endpoints", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.load:
        _run_load_process(args)
        return
    if not real_etcd_available():
        sys.exit("Debian's etcd is needed: apt-get install etcd-server etcd-client")
    seconds = 2.0 if args.quick else args.seconds
    with tempfile.TemporaryDirectory(prefix="flotilla-cluster-bench-") as tmp:
        clusters = {
            kind: start_cluster(kind, Path(tmp) / kind, 3, "--enable-v2=true")
            for kind in ("etcd", "flotilla")
        }
        try:
            print(f"3 members each on loopback, fsync on; {seconds:g} s per row after 1 s warm-up\n")
            header = f"{'workload':<26} {'to':<7} {'clients':>7} | {'etcd ops/s':>10} {'p99 ms':>7} | " \
                     f"{'flotilla':>9} {'p99 ms':>7} | {'ratio':>6} {'p99 x':>6}"  # fmt: skip
            print(header)
            print("-" * len(header))
            for workload, target in ROWS:
                for clients in args.clients:
                    e = _measure(workload, clusters["etcd"], target, clients, seconds)
                    f = _measure(workload, clusters["flotilla"], target, clients, seconds)
                    row = f"{workload:<26} {target:<7} {clients:>7} | {e[0]:>10.0f} {e[2]:>7.1f} | "
                    row += f"{f[0]:>9.0f} {f[2]:>7.1f} | {f[0] / e[0]:>5.2f}x {f[2] / e[2]:>5.2f}x"
                    print(row, flush=True)
            print(
                "\nratio = flotilla ops/s / etcd ops/s (goal >= 1.0x); "
                "p99 x = flotilla p99 / etcd p99 (goal <= 1.0x)"
            )
            if not args.quick:
                print("\netcdctl check perf --load=m (Debian's etcdctl, all three endpoints):")
                for kind, members in clusters.items():
                    print(f"  {kind:<8} {_check_perf(members)}", flush=True)
                _profile_leader(clusters["flotilla"], 8.0, Path(tmp))
        finally:
            for members in clusters.values():
                for member in members:
                    member.kill()


if __name__ == "__main__":
    main()

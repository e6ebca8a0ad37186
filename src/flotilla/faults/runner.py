"""One fault run: a real cluster, concurrent clients recording their operations, faults from a seed, then
every fault healed and three verdicts — the history is linearizable (every acknowledged write survives: the
run ends with a linearizable read of every key), and every member holds the same keyspace (HashKV at the
same revision)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from flotilla.etcd.api import rpc_pb2
from flotilla.linearizability import CheckResult, Operation, check, dump_history

from .cluster import ClusterError, ProcessCluster
from .nemesis import FAULTS, Nemesis
from .workload import Workload

__all__ = ["RunResult", "RunSettings", "run_once"]


@dataclass
class RunSettings:
    members: int = 3
    seconds: float = 15.0
    seed: int = 0
    impl: str = "flotilla"
    netns: bool = False
    clients: int = 6
    keys: int = 5
    faults: tuple[str, ...] = FAULTS
    serializable_reads: bool = False  # reads a member answers alone: not linearizable (the checker must bite)
    keep_failures: Path | None = None
    base_dir: Path | None = None


@dataclass
class RunResult:
    seed: int
    ok: bool
    operations: int
    unknown: int
    faults: list[str]
    check: CheckResult | None
    hashes_equal: bool | None
    detail: str = ""
    seconds: float = 0.0
    kept: Path | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        lin = {True: "linearizable", False: "NOT linearizable", None: "undecided"}[
            self.check.ok if self.check else None
        ]
        hashes = {True: "hashes equal", False: "HASHES DIFFER", None: "hashes unchecked"}[self.hashes_equal]
        return (
            f"seed {self.seed}: {verdict} in {self.seconds:.0f}s — {self.operations} ops "
            f"({self.unknown} unknown), "
            f"{lin}, {hashes}; faults: {'; '.join(self.faults) or 'none'}"
        )


def run_once(settings: RunSettings) -> RunResult:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="flotilla-faults-", dir=settings.base_dir) as tmp:
        cluster = ProcessCluster(Path(tmp), settings.members, impl=settings.impl, netns=settings.netns)
        with cluster:
            try:
                cluster.start()
            except ClusterError as error:
                detail = f"the cluster did not start: {error}"
                elapsed = time.monotonic() - started
                return RunResult(settings.seed, False, 0, 0, [], None, None, detail, elapsed)
            workload = Workload(
                lambda: [m.address for m in cluster.members if m.running and not m.paused],
                clients=settings.clients, keys=settings.keys, seed=settings.seed,
                serializable_reads=settings.serializable_reads,
            )  # fmt: skip
            nemesis = Nemesis(cluster, settings.seed, settings.faults)
            failure = ""
            try:
                asyncio.run(_drive(cluster, workload, nemesis, settings.seconds))
            except ClusterError as error:
                failure = f"the cluster failed: {error}"
            history = workload.history
            result = check(history) if not failure else None
            hashes_equal = _hashes_equal(cluster) if not failure else None
            ok = not failure and result is not None and result.ok is True and hashes_equal is True
            run = RunResult(
                settings.seed, ok, len(history), sum(1 for op in history if not op.known), nemesis.applied,
                result, hashes_equal, failure or (result.explain() if result and not result.ok else ""),
                time.monotonic() - started,
            )  # fmt: skip
            if not ok and settings.keep_failures is not None:
                run.kept = _keep(settings, cluster, history, run)
            return run


async def _drive(cluster: ProcessCluster, workload: Workload, nemesis: Nemesis, seconds: float) -> None:
    load = asyncio.create_task(workload.run(seconds + 60))
    try:
        await asyncio.to_thread(nemesis.run, seconds)
    finally:
        workload.stop()
        await load
    await asyncio.to_thread(cluster.leader)
    await _final_reads(cluster, workload)
    await workload.close()


async def _final_reads(cluster: ProcessCluster, workload: Workload) -> None:
    """A linearizable read of every key once every fault is healed: each acknowledged write must show."""
    for key in workload.keys:
        deadline = time.monotonic() + 30
        while True:
            member = cluster.members[int(time.monotonic() * 10) % len(cluster.members)]
            stub = workload._stub(member.address)
            start = time.monotonic_ns()
            try:
                resp = await stub.Range(rpc_pb2.RangeRequest(key=key.encode()), timeout=2)
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise ClusterError(f"no member answered a read of {key} once healed") from None
                await asyncio.sleep(0.1)
                continue
            seen = resp.kvs[0].value.decode() if resp.kvs else None
            workload.history.append(Operation(-1, "get", key, seen, None, start, time.monotonic_ns(), True))
            break


def _hashes_equal(cluster: ProcessCluster, timeout_s: float = 30.0) -> bool:
    """Every member's keyspace hash at the leader's revision, once every member applied the leader's log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        leader = cluster.leader()
        status = cluster.status(leader)
        statuses = [cluster.status(m) for m in cluster.members]
        caught_up = status is not None and all(
            s is not None and s.raftAppliedIndex >= status.raftIndex for s in statuses
        )
        if caught_up:
            try:
                hashes = cluster.hashes(status.header.revision)
            except grpc.RpcError:
                time.sleep(0.2)
                continue
            return len(set(hashes.values())) == 1
        time.sleep(0.2)
    return False


def _keep(settings: RunSettings, cluster: ProcessCluster, history, run: RunResult) -> Path:
    directory = Path(settings.keep_failures) / f"seed-{settings.seed}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "history.jsonl").write_text(dump_history(history))
    (directory / "verdict.txt").write_text(run.summary() + "\n\n" + run.detail + "\n")
    for member in cluster.members:
        (directory / f"{member.name}.log").write_text("\n".join(member.log) + "\n")
    return directory

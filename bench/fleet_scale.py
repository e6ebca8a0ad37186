"""fleet at scale: N units onto M machines on a real store, then failover times over K machine deaths.

The store is a real `flotilla etcd` member (or Debian's etcd with `--store etcd`). The machines are light
agents, as the issue allows: the real `Agent` (and `Engine`) classes, each agent with an in-memory unit
manager (`FakeUnitManager`) instead of processes, spread over `--workers` processes that each share one
store client. Three machines are engine candidates (the rest run with the engine disabled, as fleet's
disable_engine); the kills spare them, so an engine is always there (leader failover is measured by the
integration tests). The bench's own process only creates the units (64 at a time, as API clients would)
and watches progress.

- converge: from the first create until the registry shows every unit `launched` (engine placed it, the
  agent on its machine started it and published its state);
- failover: kill a machine holding units (its loops vanish; its lease expires on its own), and time until
  every unit it held is launched on another machine; K times, reporting median and max.

    .venv/bin/python bench/fleet_scale.py                              # 10,000 units, 100 machines, 20 kills
    .venv/bin/python bench/fleet_scale.py --units 1000 --machines 20 --kills 5 --store etcd
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from processes import start_member  # noqa: E402

from flotilla.client import EtcdClient, Op  # noqa: E402
from flotilla.fleet import Agent, Engine, Machine, Registry, Unit  # noqa: E402
from flotilla.systemd import FakeUnitManager  # noqa: E402

ENGINE_CANDIDATES = 3
UNIT_TEXT = "[Unit]\nDescription=bench {i}\n[Service]\nExecStart=/bin/sleep 100000\n"


class Cluster:
    def __init__(self, registry: Registry, base: Path, agent_ttl_s: int) -> None:
        self.registry, self.base, self.ttl = registry, base, agent_ttl_s
        self.tasks: dict[str, list[asyncio.Task]] = {}
        self.stop = asyncio.Event()

    def boot(self, index: int) -> str:
        machine_id = f"{index:08x}" + "0" * 24
        manager = FakeUnitManager(root=str(self.base / machine_id))
        machine = Machine(machine_id, f"10.1.{index // 250}.{index % 250}")
        agent = Agent(self.registry, manager, machine, self.base / machine_id / "units", ttl_s=self.ttl,
                      reconcile_interval_s=2.0)  # fmt: skip
        self.tasks[machine_id] = [asyncio.ensure_future(agent.run(self.stop))]
        if index < ENGINE_CANDIDATES:  # like fleetd's disable_engine on all but a few machines
            engine = Engine(self.registry, machine_id, reconcile_interval_s=2.0, lease_ttl_s=self.ttl)
            self.tasks[machine_id].append(asyncio.ensure_future(engine.run(self.stop)))
        return machine_id

    async def kill(self, machine_id: str) -> None:
        for task in self.tasks.pop(machine_id):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def close(self) -> None:
        self.stop.set()
        for machine_id in list(self.tasks):
            await self.kill(machine_id)


def _worker(endpoint: str, prefix: str, base: str, indexes: list[int], ttl: int, commands) -> None:
    """A process of light machines: boots its machines (the first ENGINE_CANDIDATES with an engine each),
    kills the ones it is told to."""

    async def main() -> None:
        client = EtcdClient([endpoint], timeout_s=30)
        cluster = Cluster(Registry(client, prefix), Path(base), ttl)
        for index in indexes:
            cluster.boot(index)
        loop = asyncio.get_running_loop()
        while (command := await loop.run_in_executor(None, commands.get)) is not None:
            await cluster.kill(command)
        await cluster.close()
        await client.close()

    asyncio.run(main())


class Workers:
    """Machines spread over worker processes, so a hundred agents do not share one event loop (with one
    fleetd per machine they never do) nor the bench's own, which creates units and watches progress. The
    engine candidates get a process of their own: an engine leader planning 10,000 units would otherwise
    starve the keep-alives of the agents beside it, which no real machine has."""

    def __init__(
        self, count: int, endpoint: str, prefix: str, base: Path, first: int, machines: int, ttl: int
    ):
        context = multiprocessing.get_context("spawn")
        count += 1  # worker 0: the engine candidates
        self.queues = [context.Queue() for _ in range(count)]
        self.home: dict[str, int] = {}
        shares: list[list[int]] = [[] for _ in range(count)]
        for index in range(first, machines):
            worker = 0 if index < ENGINE_CANDIDATES else 1 + index % (count - 1)
            shares[worker].append(index)
            self.home[f"{index:08x}" + "0" * 24] = worker
        self.processes = [
            context.Process(
                target=_worker, args=(endpoint, prefix, str(base), share, ttl, queue), daemon=True
            )
            for share, queue in zip(shares, self.queues, strict=True)
        ]
        for process in self.processes:
            process.start()

    def kill(self, machine_id: str) -> None:
        self.queues[self.home.pop(machine_id)].put(machine_id)

    def close(self) -> None:
        for queue in self.queues:
            queue.put(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


async def launched(
    registry: Registry, names: set[str] | None, expected: int, avoid: str | None = None
) -> int:
    """Units launched on their target (and not on ``avoid``), from one full read of the registry; only
    once ``launched_states`` (a quarter of the read) counts them all: the probe must not load the store it
    measures."""
    if (seen := await launched_states(registry, names, avoid)) < expected:
        return seen
    snapshot = await registry.snapshot()
    count = 0
    for unit in snapshot.cluster.units:
        if names is not None and unit.name not in names:
            continue
        target = snapshot.cluster.targets.get(unit.name)
        if snapshot.current_state(unit.name) == "launched" and target != avoid:
            count += 1
    return count


async def launched_states(registry: Registry, names: set[str] | None, avoid: str | None) -> int:
    """How many units some machine other than ``avoid`` publishes as launched: states/ only, and for a few
    units only their own states (a failover is probed every 0.2 s)."""
    cut = len(registry.prefix + "states/")
    if names is None or len(names) > 1000:
        kvs, _ = await registry.client.get_prefix(registry.prefix + "states/")
    else:
        ordered = sorted(names)
        batches = [ordered[i : i + 100] for i in range(0, len(ordered), 100)]
        results = await asyncio.gather(*(
            registry.client.txn(success=[Op.get(f"{registry.prefix}states/{n}/", prefix=True) for n in batch])
            for batch in batches
        ))  # fmt: skip
        kvs = [kv for result in results for response in result.responses for kv in response.kvs]
    found = set()
    for kv in kvs:
        name, _, machine_id = kv.key[cut:].decode().partition("/")
        if machine_id != avoid and (names is None or name in names):
            if json.loads(kv.value).get("fleetState") == "launched":
                found.add(name)
    return len(found)


async def bench(options: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="flotilla-fleet-scale-"))
    member = (
        start_member(options.store, base, "--quota-backend-bytes", str(8 * 2**30))
        if options.store == "flotilla"
        else start_member(options.store, base)
    )
    client = EtcdClient([member.endpoint], timeout_s=30)
    registry = Registry(client, "/fleet-bench/")
    cluster = Cluster(registry, base, options.agent_ttl)
    engine_candidates = {f"{index:08x}" + "0" * 24 for index in range(ENGINE_CANDIDATES)}
    workers = None
    try:
        local = options.machines if options.workers == 0 else 0
        for index in range(local):
            cluster.boot(index)
        if options.workers:
            workers = Workers(
                options.workers,
                member.endpoint,
                "/fleet-bench/",
                base,
                local,
                options.machines,
                options.agent_ttl,
            )
        await asyncio.sleep(options.agent_ttl)
        started = time.perf_counter()
        semaphore = asyncio.Semaphore(64)

        async def create(i: int) -> None:
            async with semaphore:
                await registry.create_unit(
                    Unit.from_text(f"bench-{i:05d}.service", UNIT_TEXT.format(i=i), "launched")
                )

        await asyncio.gather(*(create(i) for i in range(options.units)))
        created_s = time.perf_counter() - started
        while (done := await launched(registry, None, options.units)) < options.units:
            if time.perf_counter() - started > options.give_up_s:
                print(f"gave up after {options.give_up_s:.0f} s: {done} of {options.units} launched")
                return
            await asyncio.sleep(1.0)
        converge_s = time.perf_counter() - started
        where = f"{options.workers} agent processes" if options.workers else "one process"
        print(f"store: {options.store}; {options.units} units onto {options.machines} machines ({where})")
        print(f"created in {created_s:.1f} s; all launched after {converge_s:.1f} s")

        times = []
        kills = min(options.kills, options.machines - ENGINE_CANDIDATES - 1)  # someone must stay to run them
        for _ in range(kills):
            snapshot = await registry.snapshot()
            by_machine: dict[str, set[str]] = {}
            for name, machine_id in snapshot.cluster.targets.items():
                by_machine.setdefault(machine_id, set()).add(name)
            alive = set(cluster.tasks) | (set(workers.home) if workers else set())
            candidates = [m for m in by_machine if m in alive and m not in engine_candidates]
            victim = max(candidates, key=lambda m: len(by_machine[m]))
            units = by_machine[victim]
            killed = time.perf_counter()
            if workers is not None and victim in workers.home:
                workers.kill(victim)
            else:
                await cluster.kill(victim)
            while await launched(registry, units, len(units), avoid=victim) < len(units):
                if time.perf_counter() - killed > options.give_up_s:
                    snapshot = await registry.snapshot()
                    stuck = sorted(u for u in units if snapshot.current_state(u) != "launched")[:5]
                    detail = {u: (snapshot.cluster.targets.get(u, "-")[:8], snapshot.unschedulable.get(u))
                              for u in stuck}  # fmt: skip
                    raise SystemExit(
                        f"failover did not finish: leader {snapshot.engine_leader}, "
                        f"{len(snapshot.cluster.machines)} machines, e.g. {detail}"
                    )
                await asyncio.sleep(0.2)
            times.append(time.perf_counter() - killed)
            print(f"  kill {len(times)}: {len(units)} units moved in {times[-1]:.2f} s")
        if times:
            print(
                f"failover over {len(times)} kills: median {statistics.median(times):.2f} s, "
                f"max {max(times):.2f} s "
                f"(agent TTL {options.agent_ttl} s)"
            )
    finally:
        if workers is not None:
            workers.close()
        await cluster.close()
        await client.close()
        member.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--agent-ttl", type=int, default=2)
    parser.add_argument("--store", choices=("flotilla", "etcd"), default="flotilla")
    parser.add_argument("--give-up-s", type=float, default=300.0)
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="processes for the light agents, besides one for the engine candidates (0: all in one)",
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()

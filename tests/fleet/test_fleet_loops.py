"""Engine and agents on a real store (a `flotilla etcd` member, and Debian's etcd), with in-memory unit
managers: units get placed and started, global units run everywhere, a dead machine's units move, an
unschedulable unit says why, a restarted agent leaves healthy units alone."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from processes import real_etcd_available, start_member  # noqa: E402

from flotilla.client import EtcdClient  # noqa: E402
from flotilla.fleet.agent import Agent  # noqa: E402
from flotilla.fleet.engine import Engine  # noqa: E402
from flotilla.fleet.model import Machine, Unit  # noqa: E402
from flotilla.fleet.registry import Registry  # noqa: E402
from flotilla.systemd import FakeUnitManager  # noqa: E402

HELLO = "[Service]\nExecStart=/bin/sh -c 'while true; do echo hi; sleep 1; done'\n"
WAIT_S = 20.0


@pytest.fixture(scope="module", params=["flotilla", "etcd"])
def store(request, tmp_path_factory):
    if request.param == "etcd" and not real_etcd_available():
        pytest.skip("Debian's etcd is not installed")
    member = start_member(request.param, tmp_path_factory.mktemp(f"store-{request.param}"))
    yield member
    member.stop()


class Machinery:
    """Machines (agent + engine + fake unit manager) driven in one event loop."""

    def __init__(self, endpoint: str, base: Path, prefix: str) -> None:
        self.endpoint, self.base, self.prefix = endpoint, base, prefix
        self.client = EtcdClient([endpoint], timeout_s=5)
        self.registry = Registry(self.client, prefix)
        self.managers: dict[str, FakeUnitManager] = {}
        self.stops: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, list[asyncio.Task]] = {}

    def boot(self, machine_id: str, metadata: dict[str, str] | None = None) -> None:
        manager = self.managers.setdefault(machine_id, FakeUnitManager(root=str(self.base / machine_id)))
        stop = self.stops[machine_id] = asyncio.Event()
        machine = Machine(machine_id, f"10.0.0.{len(self.managers)}", metadata or {})
        agent = Agent(self.registry, manager, machine, self.base / machine_id / "units", ttl_s=2,
                      reconcile_interval_s=0.5)  # fmt: skip
        engine = Engine(self.registry, machine_id, reconcile_interval_s=1.0, lease_ttl_s=2)
        self.tasks[machine_id] = [
            asyncio.ensure_future(agent.run(stop)),
            asyncio.ensure_future(engine.run(stop)),
        ]

    async def kill(self, machine_id: str) -> None:
        """Like a host dying: its loops vanish without a word; its lease expires on its own."""
        for task in self.tasks.pop(machine_id):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.managers.pop(machine_id)

    async def close(self) -> None:
        for machine_id in list(self.tasks):
            self.stops[machine_id].set()
            await self.kill(machine_id)
        await self.registry.client.delete_prefix(self.prefix)
        await self.client.close()

    async def active_on(self, unit: str) -> list[str]:
        found = []
        for machine_id, manager in self.managers.items():
            status = await manager.unit_status(unit)
            if status.active_state == "active":
                found.append(machine_id)
        return sorted(found)

    async def wait(self, check, what: str, timeout_s: float = WAIT_S):
        deadline = time.monotonic() + timeout_s
        while True:
            value = await check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)


def run(store, tmp_path: Path, scenario) -> None:
    async def go() -> None:
        machinery = Machinery(store.endpoint, tmp_path, f"/fleet-test-{tmp_path.name}/")
        try:
            await scenario(machinery)
        finally:
            await machinery.close()

    asyncio.run(go())


def test_a_unit_is_placed_started_and_moves_when_its_machine_dies(store, tmp_path: Path) -> None:
    async def scenario(m: Machinery) -> None:
        for machine_id in ("a" * 32, "b" * 32, "c" * 32):
            m.boot(machine_id)
        assert await m.registry.create_unit(Unit.from_text("hello.service", HELLO, "launched"))

        async def launched_once():
            snapshot = await m.registry.snapshot()
            on = await m.active_on("hello.service")
            return on if snapshot.current_state("hello.service") == "launched" and len(on) == 1 else None

        first = (await m.wait(launched_once, "hello.service launched on one machine"))[0]
        killed_at = time.monotonic()
        await m.kill(first)

        async def moved():
            on = await m.active_on("hello.service")
            snapshot = await m.registry.snapshot()
            target = snapshot.cluster.targets.get("hello.service")
            return on if on and on[0] != first and target == on[0] else None

        await m.wait(moved, "hello.service launched on another machine", timeout_s=15)
        # Seconds, for the record (no assertion on time: these machines are noisy).
        print(f"failover took {time.monotonic() - killed_at:.2f} s")

    run(store, tmp_path, scenario)


def test_global_units_run_everywhere_and_unschedulable_units_say_why(store, tmp_path: Path) -> None:
    async def scenario(m: Machinery) -> None:
        m.boot("a" * 32, {"region": "east"})
        m.boot("b" * 32, {"region": "west"})
        text = HELLO + "[X-Fleet]\nGlobal=true\n"
        await m.registry.create_unit(Unit.from_text("everywhere.service", text, "launched"))
        west = HELLO + "[X-Fleet]\nMachineMetadata=region=west\n"
        await m.registry.create_unit(Unit.from_text("west.service", west, "launched"))
        nowhere = HELLO + "[X-Fleet]\nMachineMetadata=region=moon\n"
        await m.registry.create_unit(Unit.from_text("moon.service", nowhere, "launched"))

        async def settled():
            everywhere = await m.active_on("everywhere.service")
            west_on = await m.active_on("west.service")
            snapshot = await m.registry.snapshot()
            reason = snapshot.unschedulable.get("moon.service")
            ok = everywhere == ["a" * 32, "b" * 32] and west_on == ["b" * 32] and reason
            return reason if ok else None

        reason = await m.wait(settled, "global on both, west on b, moon unschedulable")
        assert "region=moon" in reason

        await m.registry.destroy_unit("everywhere.service")
        await m.wait(
            lambda: _none(m.active_on("everywhere.service")), "the destroyed global unit stopped everywhere"
        )

    run(store, tmp_path, scenario)


def test_a_restarted_agent_leaves_its_healthy_units_alone(store, tmp_path: Path) -> None:
    async def scenario(m: Machinery) -> None:
        machine_id = "d" * 32
        m.boot(machine_id)
        await m.registry.create_unit(Unit.from_text("steady.service", HELLO, "launched"))
        await m.wait(lambda: m.active_on("steady.service"), "steady.service active")
        manager = m.managers[machine_id]
        starts_before = sum(1 for call in manager.calls if call == ("start_unit", "steady.service"))
        for task in m.tasks.pop(machine_id):  # the agent process dies; the unit manager keeps running
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        m.boot(machine_id)  # same manager, new agent, well within the lease TTL
        await asyncio.sleep(2.0)
        assert await m.active_on("steady.service") == [machine_id]
        starts_after = sum(1 for call in manager.calls if call == ("start_unit", "steady.service"))
        assert starts_after == starts_before

    run(store, tmp_path, scenario)


async def _none(awaitable):
    return not await awaitable

"""The registry's engine writes and per-machine reads on a real store (a `flotilla etcd` member, and
Debian's etcd): a plan from a stale snapshot fails only where it is stale, batches fall back to single
writes, an agent reads only its own assignments."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from processes import real_etcd_available, start_member  # noqa: E402

from flotilla.client import EtcdClient  # noqa: E402
from flotilla.fleet import Machine, Unit, plan_schedule  # noqa: E402
from flotilla.fleet.assignments import plan_assignments  # noqa: E402
from flotilla.fleet.registry import Registry  # noqa: E402

SERVICE = "[Service]\nExecStart=/bin/true\n"


@pytest.fixture(scope="module", params=["flotilla", "etcd"])
def store(request, tmp_path_factory):
    if request.param == "etcd" and not real_etcd_available():
        pytest.skip("Debian's etcd is not installed")
    member = start_member(request.param, tmp_path_factory.mktemp(f"registry-{request.param}"))
    yield member
    member.stop()


def run(store, scenario) -> None:
    async def go() -> None:
        client = EtcdClient([store.endpoint], timeout_s=10)
        registry = Registry(client, f"/fleet-registry-{uuid.uuid4().hex}/")
        try:
            lease = await client.lease_grant(60)
            for machine_id in ("a" * 32, "b" * 32):
                await registry.register_machine(Machine(machine_id), lease.id)
            await scenario(registry)
        finally:
            await client.delete_prefix(registry.prefix)
            await client.close()

    asyncio.run(go())


async def plan_and_write(registry: Registry, change=None) -> tuple[int, object]:
    snapshot = await registry.engine_snapshot()
    if change is not None:
        await change()  # someone writes between the engine's read and its write
    plan = plan_schedule(snapshot.cluster)
    failed = await registry.write_plan(
        snapshot, plan, plan_assignments(snapshot.cluster, plan, snapshot.assignments)
    )
    return failed, plan


def test_the_engine_writes_targets_and_assignments_and_each_machine_reads_its_own(store) -> None:
    async def scenario(registry: Registry) -> None:
        for i in range(300):  # several transactions' worth
            assert await registry.create_unit(Unit.from_text(f"u{i:03d}.service", SERVICE, "launched"))
        failed, plan = await plan_and_write(registry)
        assert failed == 0 and len(plan.schedule) == 300
        snapshot = await registry.engine_snapshot()
        assert len(snapshot.cluster.targets) == 300 and len(snapshot.assignments) == 300
        for machine_id in ("a" * 32, "b" * 32):
            assigned = await registry.assigned(machine_id)
            mine = {n for n, m in snapshot.cluster.targets.items() if m == machine_id}
            assert set(assigned.units) == mine and len(mine) == 150
            assert all(u.desired_state == "launched" and u.text == SERVICE for u in assigned.units.values())
        # Nothing changed: the next pass writes nothing.
        failed, plan = await plan_and_write(registry)
        assert (failed, plan.schedule, plan.unschedule) == (0, (), ())

    run(store, scenario)


def test_a_stale_decision_fails_alone_and_the_next_pass_gets_it_right(store) -> None:
    async def scenario(registry: Registry) -> None:
        for i in range(50):
            await registry.create_unit(Unit.from_text(f"u{i:02d}.service", SERVICE, "launched"))

        async def stop_one() -> None:
            assert await registry.set_desired_state("u07.service", "inactive")

        failed, _ = await plan_and_write(registry, stop_one)
        assert failed == 1  # only u07's placement: its desired state changed after the snapshot
        snapshot = await registry.engine_snapshot()
        assert "u07.service" not in snapshot.cluster.targets and len(snapshot.cluster.targets) == 49

        # The engine sees u08 loaded and assigns that; the user launches it again before the write lands.
        assert await registry.set_desired_state("u08.service", "loaded")

        async def launch_again() -> None:
            assert await registry.set_desired_state("u08.service", "launched")

        failed, _ = await plan_and_write(registry, launch_again)
        assert failed == 1
        machine_id = (await registry.engine_snapshot()).cluster.targets["u08.service"]
        assert (await registry.assigned(machine_id)).units["u08.service"].desired_state == "launched"
        assert await registry.set_desired_state("u08.service", "loaded")
        failed, _ = await plan_and_write(registry)
        assert failed == 0
        assert (await registry.assigned(machine_id)).units["u08.service"].desired_state == "loaded"

        await registry.destroy_unit("u09.service")
        failed, _ = await plan_and_write(registry)
        for machine_id in ("a" * 32, "b" * 32):
            assert "u09.service" not in (await registry.assigned(machine_id)).records

    run(store, scenario)


def test_an_unreadable_assignment_is_reported_to_its_agent_and_removed_by_the_engine(store) -> None:
    async def scenario(registry: Registry) -> None:
        key = registry.prefix + "assignments/" + "a" * 32 + "/junk.service"
        await registry.client.put(key, "not json")
        assigned = await registry.assigned("a" * 32)
        assert assigned.units == {} and "junk.service" in assigned.errors
        await plan_and_write(registry)
        assert await registry.client.get(key) is None

    run(store, scenario)


def test_the_engines_mirror_follows_the_registry_and_matches_a_fresh_read(store) -> None:
    async def scenario(registry: Registry) -> None:
        for i in range(20):
            await registry.create_unit(Unit.from_text(f"u{i:02d}.service", SERVICE, "launched"))
        async with registry.mirror() as mirror:
            await plan_and_write(registry)
            await registry.set_desired_state("u03.service", "inactive")
            await registry.destroy_unit("u04.service")
            await registry.set_machine_metadata("a" * 32, "role", "web")
            lease = await registry.client.lease_grant(60)
            await registry.register_machine(Machine("c" * 32), lease.id)
            await registry.client.lease_revoke(lease.id)  # machine c comes and goes
            fresh = await registry.engine_snapshot()
            for _ in range(100):  # the watch delivers the last changes shortly
                copy = await mirror.snapshot()
                if copy.cluster.revision >= fresh.cluster.revision:
                    break
                await asyncio.sleep(0.05)
            assert copy.cluster == fresh.cluster
            assert copy.assignments == fresh.assignments
            assert copy.assignment_revisions == fresh.assignment_revisions
            assert [m.id for m in copy.cluster.machines] == ["a" * 32, "b" * 32]
            assert copy.cluster.machine("a" * 32).metadata == {"role": "web"}

    run(store, scenario)

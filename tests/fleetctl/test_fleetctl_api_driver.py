"""fleetctl with its default driver, fleet's HTTP API v1 (``flotilla.fleet.api``) on a real unix socket over
a real store: the same outputs as with the etcd driver, pages followed to the end, the API's refusals
reported as fleetctl reports them, and the unschedulable reason read from the unit's JSON."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from fleetctl_harness import Store, fleet_api, run_async, start_member

from flotilla.fleetctl import cmd_units

M1 = "113f16a7b8e14a4c9e3d2b1a0f9e8d7c"
M2 = "2c9e3f1a00000000000000000000beef"
M3 = "3d00000000000000000000000000cafe"
HELLO = "[Unit]\nDescription=Hello World\n\n[Service]\nExecStart=/bin/sleep 1000\n"


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    process = start_member("flotilla", tmp_path_factory.mktemp("fleetctl-api-store"))
    yield process
    process.kill()


@pytest.fixture(autouse=True)
def quick_attempts(monkeypatch):
    monkeypatch.setattr(cmd_units, "ATTEMPT_S", 0.5)
    monkeypatch.setattr(cmd_units, "POLL_S", 0.05)


def write(directory, name: str, text: str = HELLO) -> str:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_lists_follow_every_page(member, tmp_path):
    async def scenario():
        async with Store(member) as store, fleet_api(store, token_limit=2) as endpoint:
            for machine, ip in ((M3, "10.0.0.3"), (M1, "10.0.0.1"), (M2, "")):
                await store.add_machine(machine, ip, {"role": "web"} if ip else {})
            machines = await store.fleetctl_api(endpoint, "list-machines")
            assert (machines.code, machines.err) == (0, "")
            assert machines.out == (
                "MACHINE\t\tIP\t\tMETADATA\n"
                "113f16a7...\t10.0.0.1\trole=web\n"
                "2c9e3f1a...\t-\t\t-\n"
                "3d000000...\t10.0.0.3\trole=web\n"
            )
            names = ["a.service", "b.service", "c.service"]
            submitted = await store.fleetctl_api(endpoint, "submit", *(write(tmp_path, n) for n in names))
            assert submitted.out == "".join(f"Unit {n} inactive\n" for n in names)
            files = await store.fleetctl_api(
                endpoint, "list-unit-files", "--no-legend", "--fields=unit,dstate"
            )
            assert files.out == "".join(f"{n}\tinactive\n" for n in names)
            for name, machine in zip(names, (M1, M2, M3), strict=True):
                await store.registry.schedule(name, machine)
                unit_hash = (await store.registry.snapshot()).cluster.unit(name).hash
                await store.publish(name, machine, unit_hash, "launched")
            units = await store.fleetctl_api(endpoint, "list-units", "--no-legend")
            assert units.out == (
                "a.service\t113f16a7.../10.0.0.1\tactive\trunning\n"
                "b.service\t2c9e3f1a...\t\tactive\trunning\n"
                "c.service\t3d000000.../10.0.0.3\tactive\trunning\n"
            )

    run_async(scenario())


def test_start_cat_stop_and_destroy_over_the_api(member, tmp_path):
    async def scenario():
        async with Store(member) as store, fleet_api(store) as endpoint:
            await store.add_machine(M1, "172.17.8.103")
            path = write(tmp_path, "hello.service")

            async def engine():
                await store.wait_desired("hello.service", "launched")
                await store.run_unit("hello.service", M1)

            started, _ = await asyncio.gather(store.fleetctl_api(endpoint, "start", path), engine())
            assert (started.code, started.err) == (0, "")
            assert started.out == (
                "Unit hello.service inactive\nUnit hello.service launched on 113f16a7.../172.17.8.103\n"
            )
            unit_hash = (await store.registry.snapshot()).cluster.unit("hello.service").hash
            files = await store.fleetctl_api(endpoint, "list-unit-files")
            assert files.out == (
                "UNIT\t\tHASH\tDSTATE\t\tSTATE\t\tTARGET\n"
                f"hello.service\t{unit_hash[:7]}\tlaunched\tlaunched\t113f16a7.../172.17.8.103\n"
            )
            cat = await store.fleetctl_api(endpoint, "cat", "hello")
            assert (cat.code, cat.out) == (0, HELLO)

            async def engine_stop():
                await store.wait_desired("hello.service", "loaded")
                await store.publish("hello.service", M1, unit_hash, "loaded", "inactive", "dead")

            stopped, _ = await asyncio.gather(store.fleetctl_api(endpoint, "stop", "hello"), engine_stop())
            assert (stopped.code, stopped.out, stopped.err) == (
                0, "Unit hello.service loaded on 113f16a7.../172.17.8.103\n",
                "Successfully stopped units [hello.service].\n",
            )  # fmt: skip
            destroyed = await store.fleetctl_api(endpoint, "destroy", "hello")
            assert (destroyed.code, destroyed.out) == (0, "Destroyed hello.service\n")
            missing = await store.fleetctl_api(endpoint, "cat", "hello")
            assert (missing.code, missing.err) == (1, "Unit hello.service not found\n")

    run_async(scenario())


def test_replace_over_the_api_and_the_apis_refusals(member, tmp_path):
    async def scenario():
        async with Store(member) as store, fleet_api(store) as endpoint:
            path = write(tmp_path, "hello.service")
            assert (await store.fleetctl_api(endpoint, "submit", path)).code == 0
            write(tmp_path, "hello.service", HELLO.replace("Hello World", "Replaced"))
            replaced = await store.fleetctl_api(endpoint, "submit", "--replace", path)
            assert (replaced.code, replaced.out) == (0, "Unit hello.service inactive\n")
            assert "Description=Replaced\n" in (await store.fleetctl_api(endpoint, "cat", "hello")).out
            write(tmp_path, "tpl@.service", "[Service]\nExecStart=/bin/true\n")
            assert (await store.fleetctl_api(endpoint, "submit", str(tmp_path / "tpl@.service"))).code == 0
            refused = await store.fleetctl_api(endpoint, "start", "--no-block", "tpl@.service")
            assert refused.code == 1
            assert (
                refused.err
                == 'Error starting units: googleapi: Error 400: cannot activate template "tpl@.service"\n'
            )

    run_async(scenario())


def test_start_reports_the_unschedulable_reason_from_the_units_json(member, tmp_path):
    async def scenario():
        async with Store(member) as store, fleet_api(store) as endpoint:
            await store.registry.report_unschedulable(
                {}, {"picky.service": "MachineID=deadbeef matches no machine"}
            )
            result = await store.fleetctl_api(
                endpoint, "start", "--block-attempts=1", write(tmp_path, "picky.service")
            )
            assert result.code == 1
            assert (
                "Unit picky.service cannot be scheduled: MachineID=deadbeef matches no machine\n"
                in result.err
            )
            assert result.err.endswith(
                "timed out waiting for unit picky.service to report state launched "
                "(it cannot be scheduled: MachineID=deadbeef matches no machine)\n"
            )

    run_async(scenario())


def test_global_units_over_the_api(member, tmp_path):
    async def scenario():
        async with Store(member) as store, fleet_api(store) as endpoint:
            path = write(tmp_path, "g.service", HELLO + "\n[X-Fleet]\nGlobal=true\n")
            started = await store.fleetctl_api(endpoint, "start", path)
            assert (started.code, started.out) == (
                0,
                "Unit g.service inactive\nTriggered global unit g.service start\n",
            )
            files = await store.fleetctl_api(
                endpoint, "list-unit-files", "--fields=unit,state,target", "--no-legend"
            )
            assert files.out == "g.service\t-\tglobal\n"

    run_async(scenario())

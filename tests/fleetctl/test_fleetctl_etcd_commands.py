"""Every fleetctl command with ``--driver=etcd`` against a real `flotilla etcd` member, the test playing the
engine (targets through ``Registry.schedule``) and the agents (states through ``Registry.publish_state``).
Outputs are fleetctl's, byte for byte, and so are the exit codes. Run on Flotilla's store and, where Debian's
etcd is installed, on etcd 3.4."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from fleetctl_harness import Store, run_async, start_member
from processes import real_etcd_available

from flotilla.fleetctl import cmd_units

M1 = "113f16a7b8e14a4c9e3d2b1a0f9e8d7c"
M2 = "2c9e3f1a00000000000000000000beef"
HELLO = """\
[Unit]
Description=Hello World

[Service]
ExecStart=/bin/sh -c "while true; do echo Hello World; sleep 1; done"
"""


@pytest.fixture(scope="module", params=["flotilla", "etcd"] if real_etcd_available() else ["flotilla"])
def member(request, tmp_path_factory):
    # DESIGN decision 2: the etcd driver runs unchanged on Flotilla's store and on etcd 3.4.
    process = start_member(request.param, tmp_path_factory.mktemp(f"fleetctl-store-{request.param}"))
    yield process
    process.kill()


@pytest.fixture(autouse=True)
def quick_attempts(monkeypatch):
    # One attempt is 2 s in fleetctl; a quarter of that keeps the timeouts these tests wait out short.
    monkeypatch.setattr(cmd_units, "ATTEMPT_S", 0.5)
    monkeypatch.setattr(cmd_units, "POLL_S", 0.05)


def write(directory, name: str, text: str = HELLO) -> str:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return str(path)


async def _started(store: Store, path: str, machine: str, *flags: str):
    """``fleetctl start`` while the engine places the unit on ``machine`` once it is wanted launched."""
    name = path.rsplit("/", 1)[-1]

    async def engine():
        await store.wait_desired(name, "launched")
        await store.run_unit(name, machine)

    result, _ = await asyncio.gather(store.fleetctl("start", *flags, path), engine())
    return result


def test_list_machines_shows_short_ids_ips_and_sorted_metadata(member):
    async def scenario():
        async with Store(member) as store:
            empty = await store.fleetctl("list-machines")
            assert (empty.code, empty.out) == (0, "MACHINE\tIP\tMETADATA\n")
            await store.add_machine(M2, "", {})
            await store.add_machine(M1, "172.17.8.103", {"region": "us-west", "disk": "ssd"})
            listed = await store.fleetctl("list-machines")
            assert listed.code == 0 and listed.err == ""
            assert listed.out == (
                "MACHINE\t\tIP\t\tMETADATA\n"
                "113f16a7...\t172.17.8.103\tdisk=ssd,region=us-west\n"
                "2c9e3f1a...\t-\t\t-\n"
            )
            full = await store.fleetctl("list-machines", "-l", "--no-legend", "--fields=machine")
            assert full.out == f"{M1}\n{M2}\n"
            bad = await store.fleetctl("list-machines", "--fields=machine,colour")
            assert (bad.code, bad.err) == (1, 'Invalid key in output format: "colour"\n')
            assert (await store.fleetctl("list-machines", "--fields=")).err == "Must define output format\n"

    run_async(scenario())


def test_submit_cat_and_replace_from_a_local_file(member, tmp_path):
    async def scenario():
        async with Store(member) as store:
            path = write(tmp_path, "hello.service")
            submitted = await store.fleetctl("submit", path)
            assert (submitted.code, submitted.out, submitted.err) == (0, "Unit hello.service inactive\n", "")
            unit = (await store.registry.snapshot()).cluster.unit("hello.service")
            files = await store.fleetctl("list-unit-files")
            assert files.out == (
                "UNIT\t\tHASH\tDSTATE\t\tSTATE\t\tTARGET\n"
                f"hello.service\t{unit.hash[:7]}\tinactive\tinactive\t-\n"
            )
            cat = await store.fleetctl("cat", "hello")
            assert (cat.code, cat.out) == (0, HELLO.replace("\n\n", "\n\n"))
            again = await store.fleetctl("submit", path)
            assert (again.code, again.out, again.err) == (0, "", "")

            write(tmp_path, "hello.service", HELLO.replace("Hello World", "Hi"))
            differs = await store.fleetctl("submit", path)
            assert differs.code == 0 and differs.err == (
                f"WARNING: Unit hello.service in registry differs from local unit file {path}. "
                "Add --replace to override.\n"
            )
            replaced = await store.fleetctl("submit", "--replace", path)
            assert (replaced.code, replaced.out) == (0, "Unit hello.service inactive\n")
            assert "Description=Hi\n" in (await store.fleetctl("cat", "hello.service")).out
            same = await store.fleetctl("submit", "--replace", path)
            assert same.out == "Found same Unit(hello.service) in Registry, nothing to do\n"

    run_async(scenario())


def test_start_waits_until_launched_and_active_then_lists_it(member, tmp_path):
    async def scenario():
        async with Store(member) as store:
            await store.add_machine(M1, "172.17.8.103")
            result = await _started(store, write(tmp_path, "hello.service"), M1)
            assert (result.code, result.err) == (0, "")
            assert (
                result.out
                == "Unit hello.service inactive\nUnit hello.service launched on 113f16a7.../172.17.8.103\n"
            )
            unit_hash = (await store.registry.snapshot()).cluster.unit("hello.service").hash
            files = await store.fleetctl("list-unit-files")
            assert files.out == (
                "UNIT\t\tHASH\tDSTATE\t\tSTATE\t\tTARGET\n"
                f"hello.service\t{unit_hash[:7]}\tlaunched\tlaunched\t113f16a7.../172.17.8.103\n"
            )
            units = await store.fleetctl("list-units")
            assert units.out == (
                "UNIT\t\tMACHINE\t\t\t\tACTIVE\tSUB\nhello.service\t113f16a7.../172.17.8.103\tactive\trunning\n"
            )
            full = await store.fleetctl(
                "list-units", "--full", "--no-legend", "--fields=unit,load,hash,machine"
            )
            assert full.out == f"hello.service\tloaded\t{unit_hash}\t{M1}/172.17.8.103\n"
            # Already launched: nothing to trigger, nothing to wait for.
            assert (await store.fleetctl("start", "hello")).out == ""

    run_async(scenario())


def test_start_of_an_unschedulable_unit_says_why_and_gives_up_after_its_attempts(member, tmp_path):
    async def scenario():
        async with Store(member) as store:
            await store.registry.report_unschedulable(
                {}, {"picky.service": "no machine has metadata region=mars"}
            )
            result = await store.fleetctl("start", "--block-attempts=2", write(tmp_path, "picky.service"))
            assert result.code == 1
            assert result.out == "Unit picky.service inactive\n"
            assert (
                result.err.count(
                    "Unit picky.service cannot be scheduled: no machine has metadata region=mars\n"
                )
                == 1
            )
            assert result.err.endswith(
                "Error waiting for unit states, exit status: timed out waiting for unit picky.service "
                "to report state launched (it cannot be scheduled: no machine has metadata region=mars)\n"
            )

    run_async(scenario())


def test_start_no_block_triggers_and_returns(member, tmp_path):
    async def scenario():
        async with Store(member) as store:
            result = await store.fleetctl("start", "--no-block", write(tmp_path, "quick.service"))
            assert (result.code, result.out) == (
                0,
                "Unit quick.service inactive\nTriggered unit quick.service start\n",
            )
            assert (await store.registry.snapshot()).cluster.unit("quick.service").desired_state == "launched"

    run_async(scenario())


def test_a_unit_that_fails_to_become_active_fails_start(member, tmp_path):
    async def scenario():
        async with Store(member) as store:
            await store.add_machine(M1, "10.0.0.1")
            path = write(tmp_path, "broken.service")

            async def engine():
                await store.wait_desired("broken.service", "launched")
                await store.run_unit("broken.service", M1, "failed", "failed")

            result, _ = await asyncio.gather(store.fleetctl("start", path), engine())
            assert result.code == 1
            assert "Unit broken.service launched on 113f16a7.../10.0.0.1\n" in result.out
            assert (
                "Error waiting for systemd unit states, err: Failed to find an active unit broken.service"
                in (result.err)
            )

    run_async(scenario())


def test_global_units_are_triggered_and_listed_as_global(member, tmp_path):
    async def scenario():
        async with Store(member) as store:
            path = write(tmp_path, "everywhere.service", HELLO + "\n[X-Fleet]\nGlobal=true\n")
            started = await store.fleetctl("start", path)
            assert (started.code, started.out) == (
                0, "Unit everywhere.service inactive\nTriggered global unit everywhere.service start\n"
            )  # fmt: skip
            files = await store.fleetctl("list-unit-files", "--fields=unit,dstate,state,target,global")
            assert files.out == (
                "UNIT\t\t\tDSTATE\t\tSTATE\tTARGET\tGLOBAL\neverywhere.service\tlaunched\t-\tglobal\ttrue\n"
            )
            stopped = await store.fleetctl("stop", "everywhere")
            assert (stopped.out, stopped.err) == (
                "Triggered global unit everywhere.service stop\n", "Successfully stopped units [].\n"
            )  # fmt: skip

    run_async(scenario())


def test_template_instances_come_from_disk_then_from_the_registry(member, tmp_path):
    async def scenario():
        async with Store(member) as store:
            template = write(tmp_path, "web@.service", "[Service]\nExecStart=/bin/echo %i\n")
            first = await store.fleetctl("submit", str(tmp_path / "web@1"))
            assert (first.code, first.out) == (0, "Unit web@1.service inactive\n")
            missing = await store.fleetctl("submit", "web@2")  # no template beside it, none in the registry
            assert missing.code == 1 and missing.err == (
                "Error creating units: failed getting Unit(web@2.service) from template: unable to find "
                "template Unit(web@.service) in Registry or on filesystem\n"
            )
            assert (await store.fleetctl("submit", template)).code == 0
            second = await store.fleetctl("load", "--no-block", "web@2")
            assert (second.code, second.out) == (
                0,
                "Unit web@2.service inactive\nTriggered unit web@2.service load\n",
            )
            snapshot = await store.registry.snapshot()
            names = [u.name for u in snapshot.cluster.units]
            assert names == ["web@.service", "web@1.service", "web@2.service"]
            assert len({u.hash for u in snapshot.cluster.units}) == 1
            activate = await store.fleetctl("start", "--no-block", "web@.service")
            assert activate.code == 0  # the store's driver does not police templates; the API does

    run_async(scenario())


def test_load_stop_unload_restart_and_destroy_follow_the_engine(member, tmp_path):
    async def scenario():
        async with Store(member) as store:
            await store.add_machine(M1, "10.0.0.1")
            path = write(tmp_path, "cycle.service")

            async def engine_load():
                await store.wait_desired("cycle.service", "loaded")
                await store.registry.schedule("cycle.service", M1)
                unit = (await store.registry.snapshot()).cluster.unit("cycle.service")
                await store.publish("cycle.service", M1, unit.hash, "loaded", "inactive", "dead")

            loaded, _ = await asyncio.gather(store.fleetctl("load", path), engine_load())
            assert (loaded.code, loaded.out) == (
                0,
                "Unit cycle.service inactive\nUnit cycle.service loaded on 113f16a7.../10.0.0.1\n",
            )
            stop_loaded = await store.fleetctl("stop", "cycle")  # already loaded: skipped
            assert (stop_loaded.code, stop_loaded.err) == (0, "Successfully stopped units [].\n")

            started = await _started(store, path, M1)
            assert started.out == "Unit cycle.service launched on 113f16a7.../10.0.0.1\n"

            async def engine_stop_then_start():
                unit_hash = (await store.registry.snapshot()).cluster.unit("cycle.service").hash
                await store.wait_desired("cycle.service", "loaded")
                await store.publish("cycle.service", M1, unit_hash, "loaded", "inactive", "dead")
                await store.wait_desired("cycle.service", "launched")
                await store.publish("cycle.service", M1, unit_hash, "launched")

            restarted, _ = await asyncio.gather(store.fleetctl("restart", "cycle"), engine_stop_then_start())
            assert (restarted.code, restarted.out) == (
                0, "Unit cycle.service loaded on 113f16a7.../10.0.0.1\n"
                "Unit cycle.service launched on 113f16a7.../10.0.0.1\n"
            )  # fmt: skip

            async def engine_stop():
                unit_hash = (await store.registry.snapshot()).cluster.unit("cycle.service").hash
                await store.wait_desired("cycle.service", "loaded")
                await store.publish("cycle.service", M1, unit_hash, "loaded", "inactive", "dead")

            stopped, _ = await asyncio.gather(store.fleetctl("stop", "cycle.service"), engine_stop())
            assert (stopped.code, stopped.out, stopped.err) == (
                0, "Unit cycle.service loaded on 113f16a7.../10.0.0.1\n",
                "Successfully stopped units [cycle.service].\n"
            )  # fmt: skip

            async def engine_unload():
                await store.wait_desired("cycle.service", "inactive")
                await store.registry.unschedule("cycle.service", M1)
                await store.registry.remove_state("cycle.service", M1)

            unloaded, _ = await asyncio.gather(store.fleetctl("unload", "cycle"), engine_unload())
            assert (unloaded.code, unloaded.out, unloaded.err) == (
                0, "Unit cycle.service inactive\n", "Successfully unloaded units [cycle.service].\n"
            )  # fmt: skip
            inactive_stop = await store.fleetctl("stop", "cycle")
            assert (inactive_stop.code, inactive_stop.err) == (
                1,
                "Unable to stop unit cycle.service in state inactive\n",
            )
            inactive_restart = await store.fleetctl("restart", "cycle")
            assert inactive_restart.err == "Unable to restart unit cycle.service in state inactive\n"

            destroyed = await store.fleetctl("destroy", "cycle", "never-was")
            assert (destroyed.code, destroyed.out) == (0, "Destroyed cycle.service\n")
            assert (await store.registry.snapshot()).cluster.units == ()
            gone = await store.fleetctl("destroy", "cycle")
            assert (gone.code, gone.out, gone.err) == (0, "", "Units not found in registry\n")

    run_async(scenario())


def test_errors_for_unknown_and_invalid_units(member, tmp_path):
    async def scenario():
        async with Store(member) as store:
            cat = await store.fleetctl("cat", "nope")
            assert (cat.code, cat.err) == (1, "Unit nope.service not found\n")
            start = await store.fleetctl("start", str(tmp_path / "nope.service"))
            assert (start.code, start.err) == (
                1, "Error creating units: unable to find Unit(nope.service) in Registry or on filesystem\n"
            )  # fmt: skip
            bad = write(
                tmp_path,
                "bad.service",
                "[Service]\nExecStart=/bin/true\n[X-Fleet]\nMachineID=abc\nGlobal=true\n",
            )
            invalid = await store.fleetctl("submit", bad)
            assert (invalid.code, invalid.err) == (
                1,
                "Error creating units: MachineID cannot be used with Global\n",
            )
            status = await store.fleetctl("status", "nope")
            assert (status.code, status.err) == (1, "Unit nope.service does not exist.\n")
            journal = await store.fleetctl("journal", "nope")
            assert (journal.code, journal.err) == (1, "Unit nope.service does not exist.\n")
            assert (await store.fleetctl("journal")).err == "One unit file must be provided.\n"
            assert (await store.fleetctl("cat")).err == "One unit file must be provided\n"

    run_async(scenario())


def test_the_etcd_driver_from_fleetctl_variables(member):
    async def scenario():
        async with Store(member) as store:
            await store.add_machine(M1, "10.1.1.1")
            env = {
                "FLEETCTL_DRIVER": "etcd",
                "FLEETCTL_ENDPOINT": member.endpoint,
                "FLEETCTL_ETCD_KEY_PREFIX": store.prefix,
            }
            from fleetctl_harness import run_fleetctl

            result = await asyncio.to_thread(run_fleetctl, ["list-machines", "--no-legend"], env)
            assert (result.code, result.out) == (0, "113f16a7...\t10.1.1.1\t-\n")

    run_async(scenario())


def test_a_dead_store_is_fleets_listing_error(tmp_path):
    from fleetctl_harness import run_fleetctl
    from processes import free_port

    result = run_fleetctl(
        [
            "--driver=etcd",
            f"--endpoint=http://127.0.0.1:{free_port()}",
            "--request-timeout=0.5",
            "list-unit-files",
        ]
    )
    assert result.code == 1 and result.err.startswith("Error retrieving list of units from repository: ")

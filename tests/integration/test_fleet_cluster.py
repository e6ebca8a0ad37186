"""The seeds' fleet scenario with real processes: 3 store members, and on each of 3 machines a unit manager
(`flotilla systemd`) and `flotilla fleetd`, driven with `fleetctl` as a user would. Runs with Flotilla's
store and with Debian's etcd 3.4 as the registry's store.

list-machines shows 3; `fleetctl start m.service` launches the Hello World loop on one machine; that
machine dies (kill -9 of its fleetd, store member, unit manager and units, as a host failure); within
seconds the unit is launched on another machine and its journal shows the output continuing there."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fleet_harness import HELLO, fleetctl, running_fleet, unit_row, wait_for
from processes import real_etcd_available


@pytest.fixture(params=["flotilla", "etcd"])
def fleet(request, tmp_path: Path):
    if request.param == "etcd" and not real_etcd_available():
        pytest.skip("Debian's etcd is not installed")
    with running_fleet(request.param, tmp_path) as (members, machines):
        yield members, machines


def test_seed_scenario_unit_moves_when_its_machine_dies(fleet, tmp_path: Path) -> None:
    members, machines = fleet
    first = machines[0]
    listed = wait_for(
        lambda: (out := fleetctl(first, "list-machines", "--no-legend").stdout).count("\n") == 3 and out,
        "three machines in list-machines",
    )
    assert all("machine=m" in line for line in listed.splitlines())

    unit_file = tmp_path / "m.service"
    unit_file.write_text(HELLO)
    started = fleetctl(first, "start", str(unit_file))
    assert started.returncode == 0, started.stderr
    assert "Unit m.service launched on " in started.stdout

    row = wait_for(
        lambda: (r := unit_row(first, "m.service")) and r[3] == "launched" and r, "m.service launched"
    )
    target_ip = row[4].split("/")[-1]
    victim = next(m for m in machines if f"127.0.0.{m.index + 1}" == target_ip)
    wait_for(lambda: any("Hello World" in line for line in victim.unitd.journal("m.service")), "output")

    survivor = next(m for m in machines if m is not victim)
    killed_at = time.monotonic()
    victim.die()
    members[victim.index].kill()

    others = {f"127.0.0.{m.index + 1}" for m in machines if m is not victim}

    def moved():
        # Launched on a live machine: until the dead machine's lease expires its last state still says
        # launched, with a target column that has lost its IP (the machine object went with the lease).
        r = unit_row(survivor, "m.service")
        return r and r[3] == "launched" and r[4].rpartition("/")[2] in others and r

    row = wait_for(moved, "m.service launched on another machine")
    elapsed = time.monotonic() - killed_at
    new_ip = row[4].split("/")[-1]
    new_home = next(m for m in machines if f"127.0.0.{m.index + 1}" == new_ip)
    wait_for(
        lambda: any("Hello World" in line for line in new_home.unitd.journal("m.service")), "output there"
    )
    journal = fleetctl(survivor, "journal", "--lines=3", "m.service")
    assert journal.returncode == 0, journal.stderr
    assert "Hello World" in journal.stdout
    print(f"failover: launched elsewhere {elapsed:.2f} s after the machine died")

    assert fleetctl(survivor, "destroy", "m.service").returncode == 0
    wait_for(lambda: not new_home.unitd.unit_pids("m.service"), "the destroyed unit's processes gone")


def test_unschedulable_unit_is_reported_and_globals_run_everywhere(fleet, tmp_path: Path) -> None:
    _members, machines = fleet
    first = machines[0]
    wait_for(lambda: fleetctl(first, "list-machines", "--no-legend").stdout.count("\n") == 3, "3 machines")
    moon = tmp_path / "moon.service"
    moon.write_text(HELLO + "[X-Fleet]\nMachineMetadata=machine=moon\n")
    out = fleetctl(first, "start", "--block-attempts=5", str(moon))
    assert out.returncode == 1
    assert "Unit moon.service cannot be scheduled: " in out.stdout + out.stderr

    everywhere = tmp_path / "everywhere.service"
    everywhere.write_text(HELLO + "[X-Fleet]\nGlobal=true\n")
    assert fleetctl(first, "start", str(everywhere)).returncode == 0
    wait_for(
        lambda: all(m.unitd.status("everywhere.service").active_state == "active" for m in machines),
        "the global unit active on every machine",
    )

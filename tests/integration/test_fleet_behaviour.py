"""fleet's acceptance behaviours with real processes (issue 7): 3 store members, and on each of 3 machines a
unit manager and `flotilla fleetd`, driven with `fleetctl`; once with Flotilla's store and once with
Debian's etcd 3.4 as the registry's store. One cluster per store serves every test of this module; the
tests that disturb a machine resume it before they end, so they come last.

1. Placement as fleet documents it (Documentation/unit-files-and-scheduling.md): MachineOf co-locates,
   Conflicts spreads, MachineMetadata is AND across keys and OR within a key, template instances spread,
   destroy removes a unit from every machine, `fleetctl journal -f` follows new output.
2. Bad input gets fleetctl's messages and exit codes.
3. Where fleet's users suffered (reference/fleet.md section 7), Flotilla does better: a store blip shorter
   than the lease TTL stops nothing (#1145); a CPU-starved but live machine keeps its units (#972); a
   machine that lost its lease stops its singleton units itself (#1690's double run bounded); restarting
   fleetd leaves healthy units running (#723, #1621)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fleet_harness import (
    HELLO,
    Machine,
    fleetctl,
    fleetctl_argv,
    launched_on,
    running_fleet,
    store_leader,
    unit_row,
    wait_for,
)
from processes import MemberProcess, real_etcd_available

# fleetd's default agent TTL is 2 s: a pause well under it must change nothing, one well over it must
# count as a lost machine.
SHORT_PAUSE_S = 1.0
LONG_PAUSE_S = 5.0
# How long the tests watch for a wrong move or restart after a disturbance: longer than one TTL, so an
# expired lease would have been acted on by then (the engine reconciles on the lease's deletion).
SETTLE_S = 3.0
# A fleetd restart that takes longer than the TTL (a package upgrade, a loaded host): still no move.
RESTART_DOWN_S = 2.5


@dataclass
class Fleet:
    members: list[MemberProcess]
    machines: list[Machine]
    workdir: Path

    @property
    def first(self) -> Machine:
        return self.machines[0]

    def write(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.write_text(text)
        return path

    def start(self, *names: str, extra: str = "") -> None:
        """Write each unit (HELLO plus ``extra``) and `fleetctl start` them all in one call."""
        paths = [str(self.write(name, HELLO + extra)) for name in names]
        out = fleetctl(self.first, "start", *paths)
        assert out.returncode == 0, out.stdout + out.stderr

    def homes(self, *names: str) -> list[Machine]:
        """Where each unit is launched, once all are."""
        return wait_for(
            lambda: all(homes := [launched_on(self.machines, n) for n in names]) and homes,
            f"{', '.join(names)} launched",
        )

    def destroy(self, *names: str) -> None:
        out = fleetctl(self.first, "destroy", *names)
        assert out.returncode == 0, out.stdout + out.stderr
        for name in names:
            wait_for(
                lambda n=name: not any(m.has_unit(n) for m in self.machines),
                f"{name} gone from every machine",
            )

    def active_on(self, name: str) -> list[Machine]:
        return [m for m in self.machines if m.active(name)]


@pytest.fixture(scope="module", params=["flotilla", "etcd"])
def fleet(request, tmp_path_factory):
    if request.param == "etcd" and not real_etcd_available():
        pytest.skip("Debian's etcd is not installed")
    base = tmp_path_factory.mktemp(f"fleet-{request.param}")
    workdir = base / "units"
    workdir.mkdir()
    # m1 and m3 have SSDs: MachineMetadata tests pick among them.
    with running_fleet(request.param, base, metadata={0: {"disk": "ssd"}, 2: {"disk": "ssd"}}) as (
        members,
        machines,
    ):
        wait_for(
            lambda: fleetctl(machines[0], "list-machines", "--no-legend").stdout.count("\n") == 3,
            "3 machines",
        )
        yield Fleet(members, machines, workdir)


# ---------------------------------------------------------------------------------------- 1. placement


def test_machine_of_runs_the_follower_where_its_peer_runs(fleet: Fleet) -> None:
    fleet.start("db.service")
    fleet.start("web.service", extra="[X-Fleet]\nMachineOf=db.service\n")
    db_home, web_home = fleet.homes("db.service", "web.service")
    assert web_home is db_home
    wait_for(lambda: db_home.active("db.service") and db_home.active("web.service"), "both active there")
    fleet.destroy("web.service", "db.service")


def test_conflicting_units_land_on_three_machines(fleet: Fleet) -> None:
    names = ["c1.service", "c2.service", "c3.service"]
    fleet.start(*names, extra="[X-Fleet]\nConflicts=c*.service\n")
    homes = fleet.homes(*names)
    assert len({m.index for m in homes}) == 3, [m.root.name for m in homes]
    fleet.destroy(*names)


def test_machine_metadata_is_and_across_keys_and_or_within_a_key(fleet: Fleet) -> None:
    # disk=ssd is on m1 and m3; machine=m3 narrows it to m3 (AND across keys).
    fleet.start("ssd3.service", extra='[X-Fleet]\nMachineMetadata="disk=ssd" "machine=m3"\n')
    # machine=m2 or machine=m3 (OR within a key, across lines); disk=ssd leaves m3.
    fleet.start(
        "either.service",
        extra="[X-Fleet]\nMachineMetadata=machine=m2\nMachineMetadata=machine=m3\nMachineMetadata=disk=ssd\n",
    )
    (ssd3_home, either_home) = fleet.homes("ssd3.service", "either.service")
    assert ssd3_home.metadata["machine"] == "m3"
    assert either_home.metadata["machine"] == "m3"
    wait_for(lambda: ssd3_home.active("ssd3.service"), "ssd3.service active on m3")
    fleet.destroy("ssd3.service", "either.service")


def test_template_instances_started_by_name_spread(fleet: Fleet) -> None:
    fleet.write("foo@.service", HELLO + "[X-Fleet]\nConflicts=foo@*\n")
    out = fleetctl(fleet.first, "start", "foo@1", "foo@2", "foo@3", cwd=fleet.workdir)
    assert out.returncode == 0, out.stdout + out.stderr
    names = ["foo@1.service", "foo@2.service", "foo@3.service"]
    for name in names:
        assert f"Unit {name} launched on " in out.stdout
    homes = fleet.homes(*names)
    assert len({m.index for m in homes}) == 3, [m.root.name for m in homes]
    for name, home in zip(names, homes, strict=True):
        wait_for(lambda n=name, h=home: h.active(n), f"{name} active on {home.root.name}")
    fleet.destroy(*names)


def test_destroy_removes_a_unit_from_every_machine(fleet: Fleet) -> None:
    fleet.start("gone.service")
    fleet.start("gone-global.service", extra="[X-Fleet]\nGlobal=true\n")
    (home,) = fleet.homes("gone.service")
    wait_for(lambda: home.active("gone.service"), "gone.service active")
    wait_for(
        lambda: all(m.active("gone-global.service") for m in fleet.machines), "the global unit everywhere"
    )

    fleet.destroy("gone.service", "gone-global.service")  # waits for files and processes to go
    for machine in fleet.machines:
        for name in ("gone.service", "gone-global.service"):
            assert machine.unitd.status(name).active_state == "inactive"
    listed = fleetctl(fleet.first, "list-units", "--no-legend").stdout
    assert "gone" not in listed
    assert unit_row(fleet.first, "gone.service") is None


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_journal_follow_streams_new_output_until_stopped(fleet: Fleet) -> None:
    fleet.start("ticker.service")
    (home,) = fleet.homes("ticker.service")
    home.unitd.wait_journal("ticker.service", "Hello World")

    # --lines=1 prints one old line: every further line was written after journal -f began.
    follower = subprocess.Popen(
        fleetctl_argv(fleet.first, "journal", "-f", "--lines=1", "ticker.service"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True)
    reader.start()
    try:
        seen = []
        while len(seen) < 4:
            seen.append(lines.get(timeout=20))
        assert sum("Hello World" in line for line in seen) >= 3, seen
        helpers = _descendants(follower.pid)
        assert helpers, "journal -f runs journalctl on the unit's machine"
    finally:
        follower.send_signal(signal.SIGTERM)
        try:
            follower.wait(timeout=20)
        except subprocess.TimeoutExpired:
            follower.kill()
            follower.wait()
            raise
    reader.join(timeout=10)
    wait_for(lambda: not any(_alive(pid) for pid in helpers), "journal -f's helper processes gone", 10)
    fleet.destroy("ticker.service")


# ---------------------------------------------------------------------------------------- 2. bad input


def test_unit_file_that_does_not_parse_is_refused_with_its_line(fleet: Fleet) -> None:
    path = fleet.write("broken.service", "[Service\nExecStart=/bin/true\n")
    out = fleetctl(fleet.first, "start", "--no-block", str(path))
    assert out.returncode == 1
    assert f"Error creating units: failed getting Unit({path}) from file: " in out.stderr
    assert f"{path}:1: unable to find end of section" in out.stderr
    assert unit_row(fleet.first, "broken.service") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("MachineID=0123456789abcdef0123456789abcdef\nGlobal=true\n", "MachineID cannot be used with Global"),
        ("Global=true\nMachineOf=db.service\n", "Global cannot be used with Peers"),
        ("Conflicts=x*\nReplaces=y.service\n", "Conflicts cannot be used with Replaces"),
    ],
)
def test_conflicting_x_fleet_options_are_refused(fleet: Fleet, options: str, message: str) -> None:
    path = fleet.write("clash.service", HELLO + "[X-Fleet]\n" + options)
    out = fleetctl(fleet.first, "start", "--no-block", str(path))
    assert out.returncode == 1
    assert message in out.stderr
    assert out.stderr.startswith("Error creating units: ")
    assert unit_row(fleet.first, "clash.service") is None


@pytest.mark.parametrize(
    ("command", "message", "code"),
    [
        (["status"], "Unit nosuch.service does not exist.", 1),
        (["journal"], "Unit nosuch.service does not exist.", 1),
        (["cat"], "Unit nosuch.service not found", 1),
        (["destroy"], "Units not found in registry", 0),  # fleet: nothing to destroy is not an error
    ],
)
def test_unknown_unit(fleet: Fleet, command: list[str], message: str, code: int) -> None:
    out = fleetctl(fleet.first, *command, "nosuch")
    assert (out.returncode, out.stderr.strip(), out.stdout) == (code, message, "")


# ------------------------------------------------------------------------------------ 3. better than fleet


def _steady(fleet: Fleet, name: str) -> tuple[Machine, int]:
    """Start ``name`` and return its machine and main PID once it runs."""
    fleet.start(name)
    (home,) = fleet.homes(name)
    wait_for(lambda: home.active(name) and home.main_pid(name), f"{name} running")
    return home, home.main_pid(name)


def _assert_untouched(fleet: Fleet, name: str, home: Machine, pid: int) -> None:
    assert launched_on(fleet.machines, name) is home
    status = home.unitd.status(name)
    assert (status.active_state, status.main_pid) == ("active", pid), "the unit was restarted"
    assert [m.root.name for m in fleet.active_on(name)] == [home.root.name], "the unit runs twice"


def test_a_store_blip_shorter_than_the_ttl_stops_nothing(fleet: Fleet) -> None:
    home, pid = _steady(fleet, "blip.service")
    leader = store_leader(fleet.members)
    assert leader.proc is not None
    leader.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(SHORT_PAUSE_S)
    finally:
        leader.proc.send_signal(signal.SIGCONT)
    time.sleep(SETTLE_S)
    _assert_untouched(fleet, "blip.service", home, pid)
    fleet.destroy("blip.service")


def test_a_cpu_starved_machine_keeps_its_units(fleet: Fleet) -> None:
    home, pid = _steady(fleet, "starved.service")
    home.pause_fleetd()
    try:
        time.sleep(SHORT_PAUSE_S)
    finally:
        home.resume_fleetd()
    time.sleep(SETTLE_S)
    _assert_untouched(fleet, "starved.service", home, pid)
    fleet.destroy("starved.service")


@pytest.mark.parametrize("down_s", [0.0, RESTART_DOWN_S], ids=["quick", "slower-than-ttl"])
def test_restarting_fleetd_leaves_healthy_units_running(fleet: Fleet, down_s: float) -> None:
    home, pid = _steady(fleet, "kept.service")
    home.restart_fleetd(down_s)
    wait_for(
        lambda: fleetctl(fleet.first, "list-machines", "--no-legend").stdout.count("\n") == 3, "3 machines"
    )
    time.sleep(SETTLE_S)  # the old process's lease expires meanwhile
    _assert_untouched(fleet, "kept.service", home, pid)
    fleet.destroy("kept.service")


def test_a_machine_that_lost_its_lease_stops_its_singletons_itself(fleet: Fleet) -> None:
    home, _pid = _steady(fleet, "single.service")
    # Ask a machine that stays responsive: the frozen one's API answers nothing.
    witness = next(m for m in fleet.machines if m is not home)
    home.pause_fleetd()
    try:
        moved = wait_for(
            lambda: (m := launched_on(fleet.machines, "single.service", witness)) not in (None, home) and m,
            "single.service launched on another machine while its machine is frozen",
        )
        wait_for(lambda: moved.active("single.service"), "the new copy active")
        assert home.active("single.service"), "the frozen machine's unit manager still runs the old copy"
    finally:
        home.resume_fleetd()
    # Nobody else can reach the old copy: the resumed agent must notice its lost lease and stop it.
    wait_for(lambda: not home.active("single.service"), "the old copy stopped by the resumed agent", 10)
    assert [m.root.name for m in fleet.active_on("single.service")] == [moved.root.name]
    wait_for(
        lambda: fleetctl(fleet.first, "list-machines", "--no-legend").stdout.count("\n") == 3,
        "the resumed machine back in the cluster",
    )
    time.sleep(SETTLE_S)
    assert [m.root.name for m in fleet.active_on("single.service")] == [moved.root.name]
    assert launched_on(fleet.machines, "single.service") is moved
    fleet.destroy("single.service")

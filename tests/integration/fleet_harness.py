"""Real fleet machines for integration tests: per machine a unit manager (`flotilla systemd --root`) and a
`flotilla fleetd` subprocess, on a store cluster of real member processes (Flotilla's or Debian's etcd),
driven with `fleetctl` through the machine's unix socket as a user would.

Machines advertise ``machine=m<N>`` and ``flotilla_systemd_root=<root>`` (fleetctl status/journal/ssh find
the machine's unit manager through it) plus any extra metadata a test asks for; machine N has public IP
127.0.0.N, which is how fleetctl's MACHINE column names it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from processes import MemberProcess, start_cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "systemd"))
from supervisor_harness import Unitd, tagged_pids  # noqa: E402

from flotilla.client import EtcdClient  # noqa: E402

HELLO = """[Unit]
Description=MyApp
[Service]
ExecStart=/bin/sh -c "while true; do echo Hello World; sleep 0.5; done"
"""
WAIT_S = 30.0


class Machine:
    def __init__(
        self, index: int, root: Path, endpoints: list[str], metadata: Mapping[str, str] | None = None
    ) -> None:
        self.index, self.root, self.endpoints = index, root, endpoints
        self.ip = f"127.0.0.{index + 1}"
        self.metadata = {"machine": f"m{index + 1}", "flotilla_systemd_root": str(root), **(metadata or {})}
        self.unitd = Unitd(root).start()
        self.log = open(root / "fleetd.log", "ab")  # noqa: SIM115
        self.socket = root / "run/fleet.sock"
        self.fleetd = self._spawn_fleetd()

    def __repr__(self) -> str:
        return f"<machine {self.root.name} {self.ip}>"

    def _spawn_fleetd(self) -> subprocess.Popen[bytes]:
        metadata = ",".join(f"{k}={v}" for k, v in self.metadata.items())
        return subprocess.Popen(
            [sys.executable, "-m", "flotilla", "fleetd", f"--etcd_servers={','.join(self.endpoints)}",
             f"--systemd_root={self.root}", f"--public_ip={self.ip}", f"--metadata={metadata}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop_fleetd(self) -> None:
        """SIGTERM, as an operator's `systemctl stop fleet` would; SIGKILL after 30 s."""
        if self.fleetd.poll() is None:
            self.fleetd.send_signal(signal.SIGTERM)
            try:
                self.fleetd.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.fleetd.kill()
                self.fleetd.wait()

    def restart_fleetd(self, down_s: float = 0.0) -> None:
        """SIGTERM, then a new fleetd ``down_s`` later (a slow start: an upgrade, a loaded host)."""
        self.stop_fleetd()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()  # so callers can wait for the new process's API
        time.sleep(down_s)
        self.fleetd = self._spawn_fleetd()
        wait_for(self.socket.exists, f"the restarted fleetd of {self.root.name} to serve its API")

    def pause_fleetd(self) -> None:
        """SIGSTOP: a live machine whose fleetd gets no CPU (fleet #972)."""
        self.fleetd.send_signal(signal.SIGSTOP)

    def resume_fleetd(self) -> None:
        self.fleetd.send_signal(signal.SIGCONT)

    def die(self) -> None:
        """A host failure: every process of the machine gets SIGKILL at once."""
        self.fleetd.kill()
        self.fleetd.wait()
        assert self.unitd.process is not None
        self.unitd.process.kill()
        self.unitd.process.wait()
        for pid in tagged_pids(self.unitd.layout.instance_tag):
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.fleetd.poll() is None:
            self.fleetd.send_signal(signal.SIGCONT)  # a paused fleetd cannot act on SIGTERM
        self.stop_fleetd()
        self.log.close()
        if self.unitd.process is not None and self.unitd.process.poll() is None:
            self.unitd.stop()
        for pid in tagged_pids(self.unitd.layout.instance_tag):
            os.kill(pid, signal.SIGKILL)

    # ---- what the machine's unit manager says

    def active(self, unit: str) -> bool:
        return self.unitd.status(unit).active_state == "active"

    def main_pid(self, unit: str) -> int:
        return self.unitd.status(unit).main_pid

    def has_unit(self, unit: str) -> bool:
        """Whether fleet left anything of ``unit`` here: a file in its runtime directory or a process."""
        return (self.root / "run/fleet/units" / unit).exists() or bool(self.unitd.unit_pids(unit))


def fleetctl_argv(machine: Machine, *args: str) -> list[str]:
    return [sys.executable, "-m", "flotilla.fleetctl", f"--endpoint=unix://{machine.socket}", *args]


def fleetctl(
    machine: Machine, *args: str, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fleetctl_argv(machine, *args), capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def unit_row(machine: Machine, unit: str) -> list[str] | None:
    """The unit's `list-unit-files --full` cells: UNIT HASH DSTATE STATE TARGET."""
    out = fleetctl(machine, "list-unit-files", "--no-legend", "--full")
    for line in out.stdout.splitlines():
        cells = line.split()
        if cells and cells[0] == unit:
            return cells
    return None


def machine_at(machines: list[Machine], target: str) -> Machine:
    """The machine a TARGET/MACHINE cell (``<id>/<ip>``) names."""
    ip = target.split("/")[-1]
    return next(m for m in machines if m.ip == ip)


def launched_on(machines: list[Machine], unit: str, via: Machine | None = None) -> Machine | None:
    """Where list-unit-files (asked of ``via``, default the first machine) says ``unit`` is launched
    (None until it is)."""
    row = unit_row(via or machines[0], unit)
    if row is None or row[3] != "launched":
        return None
    return machine_at(machines, row[4])


def store_leader(members: list[MemberProcess]) -> MemberProcess:
    """The member the store cluster calls its leader, asked of every member."""

    async def ask() -> MemberProcess:
        async with EtcdClient([m.endpoint for m in members], timeout_s=3) as client:
            statuses = [await client.status(m.endpoint) for m in members]
        leaders = {s.leader for s in statuses}
        assert len(leaders) == 1 and 0 not in leaders, f"members disagree on the leader: {statuses}"
        return members[next(i for i, s in enumerate(statuses) if s.member_id == s.leader)]

    return asyncio.run(ask())


@contextlib.contextmanager
def running_fleet(
    kind: str, base: Path, metadata: Mapping[int, Mapping[str, str]] | None = None, size: int = 3
) -> Iterator[tuple[list[MemberProcess], list[Machine]]]:
    """``size`` store members of ``kind`` (flotilla|etcd) and ``size`` machines; ``metadata`` adds to
    machine index N's metadata. Every process is gone when the block ends."""
    members: list[MemberProcess] = start_cluster(kind, base / "store", size)
    machines: list[Machine] = []
    try:
        for index in range(size):
            root = base / f"m{index + 1}"
            root.mkdir()
            extra = (metadata or {}).get(index)
            machines.append(Machine(index, root, [m.endpoint for m in members], extra))
        for machine in machines:
            wait_for(machine.socket.exists, f"fleetd of {machine.root.name} to serve its API")
        yield members, machines
    finally:
        for machine in machines:
            machine.stop()
        for member in members:
            if member.proc is not None and member.proc.poll() is None:
                member.proc.send_signal(signal.SIGCONT)
            member.kill()

"""status, journal (-f) and ssh run on the unit's machine: here, a real `flotilla systemd` unit manager
whose root the machine advertises in its ``flotilla_systemd_root`` metadata."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fleetctl_harness import Store, run_async, start_member

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "systemd"))

from supervisor_harness import Unitd  # noqa: E402

M1 = "113f16a7b8e14a4c9e3d2b1a0f9e8d7c"
M2 = "2c9e3f1a00000000000000000000beef"
ECHOER = (
    "[Unit]\nDescription=Echoer\n\n[Service]\n"
    "ExecStart=/bin/sh -c 'echo hello from echoer; while sleep 0.2; do echo tick; done'\n"
)


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    process = start_member("flotilla", tmp_path_factory.mktemp("fleetctl-remote-store"))
    yield process
    process.kill()


@pytest.fixture(scope="module")
def unitd(tmp_path_factory):
    daemon = Unitd(tmp_path_factory.mktemp("fleetctl-unitd")).start()
    daemon.write_unit("echoer.service", ECHOER)
    daemon.start_unit("echoer.service")
    daemon.wait_journal("echoer.service", "hello from echoer")
    yield daemon
    daemon.stop()


async def _placed(store: Store, unitd: Unitd, tmp_path: Path) -> None:
    """echoer.service in the registry, launched on M1 (whose root is the daemon's); M2 has no root."""
    await store.add_machine(M1, "10.0.0.1", {"flotilla_systemd_root": str(unitd.root)})
    await store.add_machine(M2, "10.0.0.2")
    (tmp_path / "echoer.service").write_text(ECHOER)
    (tmp_path / "elsewhere.service").write_text(ECHOER)
    assert (
        await store.fleetctl("submit", str(tmp_path / "echoer.service"), str(tmp_path / "elsewhere"))
    ).code == 0
    await store.run_unit("echoer.service", M1)
    await store.run_unit("elsewhere.service", M2)


def test_status_runs_systemctl_status_against_the_machines_root(member, unitd, tmp_path):
    async def scenario():
        async with Store(member) as store:
            await _placed(store, unitd, tmp_path)
            status = await store.fleetctl("status", "echoer")
            assert status.code == 0, status.err
            assert "echoer.service - Echoer" in status.out and "active (running)" in status.out
            no_root = await store.fleetctl("status", "elsewhere")
            assert no_root.code == 1 and no_root.err.startswith("Unable to SSH to remote host: ")
            assert "flotilla_systemd_root" in no_root.err
            await store.registry.unschedule("elsewhere.service", M2)
            unloaded = await store.fleetctl("status", "elsewhere")
            assert (unloaded.code, unloaded.err) == (
                1,
                "Unit elsewhere.service does not appear to be loaded.\n",
            )

    run_async(scenario())


def test_journal_shows_the_last_lines_of_the_unit(member, unitd, tmp_path):
    async def scenario():
        async with Store(member) as store:
            await _placed(store, unitd, tmp_path)
            journal = await store.fleetctl("journal", "--lines=1000", "echoer")
            assert journal.code == 0, journal.err
            assert "hello from echoer" in journal.out and "tick" in journal.out
            short = await store.fleetctl("journal", "--lines", "2", "--output=cat", "echoer.service")
            assert short.out.splitlines()[-2:] == ["tick", "tick"] and len(short.out.splitlines()) == 2

    run_async(scenario())


def test_journal_follow_streams_until_interrupted_and_leaves_no_process(member, unitd, tmp_path):
    async def placed(store):
        await _placed(store, unitd, tmp_path)

    async def scenario():
        async with Store(member) as store:
            await placed(store)
            argv = [
                sys.executable,
                "-m",
                "flotilla.fleetctl",
                *store.argv("journal", "-f", "--output=cat", "echoer"),
            ]
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            try:
                ticks = 0
                while ticks < 15:  # more than --lines' 10: new lines arrive while it follows
                    line = await proc.stdout.readline()
                    assert line, (await proc.stderr.read()).decode()
                    ticks += line == b"tick\n"
            finally:
                proc.send_signal(signal.SIGTERM)
                code = await proc.wait()
            assert code == 130
            return str(unitd.root)

    root = run_async(scenario())
    deadline = time.monotonic() + 10
    while _journalctl_processes(root):
        assert time.monotonic() < deadline, f"journalctl outlived fleetctl: {_journalctl_processes(root)}"
        time.sleep(0.05)


def _journalctl_processes(root: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"journalctl" in cmdline and root.encode() in cmdline:
                found.append(int(entry.name))
    return found


def test_ssh_runs_the_command_here_with_the_machines_root(member, unitd, tmp_path):
    async def scenario():
        async with Store(member) as store:
            await _placed(store, unitd, tmp_path)
            by_machine = await store.fleetctl(
                "ssh", "113f", "echo", "$FLOTILLA_SYSTEMD_ROOT", "$FLEET_MACHINE_ID"
            )
            assert (by_machine.code, by_machine.out) == (0, f"{unitd.root} {M1}\n")
            by_unit = await store.fleetctl("ssh", "--unit", "echoer", "exit 3")
            assert by_unit.code == 3
            systemctl = await store.fleetctl("ssh", "echoer.service", "--", "echo", "via", "unit")
            assert systemctl.out == "via unit\n"
            unknown = await store.fleetctl("ssh", "nothing-like-it")
            assert (unknown.code, unknown.err) == (
                1,
                "Unable to proceed: could not find matching unit or machine\n",
            )
            both = await store.fleetctl("ssh", "--machine", "113f", "--unit", "echoer", "true")
            assert both.err == "Both machine and unit flags provided, please specify only one.\n"
            no_root = await store.fleetctl("ssh", "--machine", "2c9e", "true")
            assert no_root.code == 1 and no_root.err.startswith("Unable to SSH to remote host: ")

    run_async(scenario())


def test_subprocess_exit_codes_are_fleetctls(member, tmp_path):
    argv = [sys.executable, "-m", "flotilla.fleetctl", "--driver=etcd", f"--endpoint={member.endpoint}"]
    done = subprocess.run(
        [*argv, "--etcd-key-prefix=/fleetctl-empty/", "cat", "x"], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (1, "Unit x.service not found\n")
    done = subprocess.run([*argv, "list-units", "--nope"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2

"""A real `flotilla systemd --root DIR` daemon for tests, with helpers to write units, drive jobs through
ManagerClient or the systemctl CLI, read the journal, and prove no process of a unit outlives its stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flotilla.systemd import JournalReader, Layout, ManagerClient, UnitStatus

WAIT_S = 20.0


def tagged_pids(tag_prefix: str) -> set[int]:
    """Live processes carrying a unit tag of this manager (FLOTILLA_UNIT_TAG=<tag>:<unit>)."""
    wanted = f"FLOTILLA_UNIT_TAG={tag_prefix}".encode()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z":
            continue
        if any(var.startswith(wanted) for var in env):
            found.add(int(entry.name))
    return found


class Unitd:
    def __init__(self, root: Path, *, setenv: dict[str, str] | None = None, cgroups: bool = True) -> None:
        self.root = root
        self.layout = Layout.at(root)
        self.setenv = setenv or {}
        self.cgroups = cgroups
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Unitd:
        self.layout.etc_units.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "flotilla", "systemd", "--root", str(self.root)]
        for key, value in self.setenv.items():
            args += ["--setenv", f"{key}={value}"]
        if not self.cgroups:
            args.append("--no-cgroups")
        self.log = open(self.root / "unitd.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_for(lambda: self._answers(), "the manager to answer on its socket")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the manager exited: {(self.root / 'unitd.log').read_text()}")
        if not self.layout.socket_path.exists():
            return False
        try:
            self.call(lambda c: c.ping())
            return True
        except Exception:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        leftovers = tagged_pids(self.layout.instance_tag)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"processes outlived the manager: {leftovers}"

    def write_unit(self, name: str, text: str, *, directory: Path | None = None) -> Path:
        path = (directory or self.layout.etc_units) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def call(self, work: Callable[[ManagerClient], Any]) -> Any:
        async def go() -> Any:
            async with ManagerClient(self.root) as client:
                return await work(client)

        return asyncio.run(go())

    def start_unit(self, name: str) -> Any:
        return self.call(lambda c: c.start_unit(name))

    def stop_unit(self, name: str) -> Any:
        return self.call(lambda c: c.stop_unit(name))

    def status(self, name: str) -> UnitStatus:
        return self.call(lambda c: c.unit_status(name))

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flotilla", "systemctl", "--root", str(self.root), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def journal(self, unit: str) -> list[str]:
        return [e.message for e in JournalReader(self.layout.journal_dir).entries(units=[unit])]

    def unit_pids(self, unit: str) -> set[int]:
        return tagged_pids(f"{self.layout.instance_tag}:{unit}")

    @staticmethod
    def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def wait_state(self, unit: str, active: str, sub: str | None = None) -> UnitStatus:
        def check() -> UnitStatus | None:
            status = self.status(unit)
            if status.active_state == active and (sub is None or status.sub_state == sub):
                return status
            return None

        return self.wait_for(check, f"{unit} to be {active} ({sub})")

    def wait_journal(self, unit: str, text: str) -> list[str]:
        return self.wait_for(
            lambda: [m for m in self.journal(unit) if text in m], f"{text!r} in {unit}'s journal"
        )

"""Helpers for machine tests: cloud-configs on free ports, booted machines that are always cleaned up, the
clients a user would type (Debian's etcdctl, fleetctl), and network namespaces made by the test itself."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flotilla.machine import MachineProcess, MachineSpec, boot, machine_pids

ETCDCTL = "/usr/bin/etcdctl"
WAIT_S = 60.0


def loopback_address() -> str:
    """A loopback address of its own for one machine (all of 127/8 works on Linux without setup)."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def etcdctl(endpoint: str, *args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    """Debian's etcdctl (v3 API), inside ``netns`` when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    argv = [ETCDCTL, f"--endpoints={endpoint}", "--command-timeout=5s", *args]
    return subprocess.run(in_netns(netns, argv), capture_output=True, text=True, env=env, timeout=30)


def fleetctl(socket: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "flotilla.fleetctl", f"--endpoint=unix://{socket}", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def in_netns(netns: str | None, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv] if netns else argv


def fleet_machines(socket: str | Path) -> list[list[str]]:
    """``fleetctl list-machines --no-legend --full`` rows (MACHINE IP METADATA), [] if fleet cannot say."""
    out = fleetctl(socket, "list-machines", "--no-legend", "--full")
    return [line.split() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


@contextlib.contextmanager
def running_machine(spec: MachineSpec, *, timeout_s: float = WAIT_S) -> Iterator[MachineProcess]:
    """A booted machine; whatever the test does, nothing of it survives the block."""
    machine = boot(spec, timeout_s=timeout_s)
    try:
        yield machine
    finally:
        if machine.poll() is None:
            machine.stop(timeout_s=60)
        if machine_pids(spec.root):
            machine.kill()


# --- network namespaces -----------------------------------------------------------------------------------


def netns_supported() -> bool:
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nsenter"):
        return False
    name = f"flprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return made


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {result.stderr.strip()}")


class Network:
    """A switch namespace with a bridge (address .254) and ``size`` host namespaces, host i at .i on a
    veth to the bridge; the host's own network is never touched. ``close()`` deletes every namespace."""

    def __init__(self, size: int) -> None:
        tag = f"{os.getpid()}x{random.randint(0, 9999)}"
        self.prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 254)}"
        self.switch = f"flsw{tag}"
        self.hosts = [f"flm{tag}n{i}" for i in range(1, size + 1)]
        self._made: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def address(self, index: int) -> str:
        """The address of host ``index`` (0-based); the switch is ``.254``."""
        return f"{self.prefix}.{index + 1}"

    @property
    def switch_address(self) -> str:
        return f"{self.prefix}.254"

    def _build(self) -> None:
        for name in (self.switch, *self.hosts):
            _ip("netns", "add", name)
            self._made.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "addr", "add", f"{self.switch_address}/24", "dev", "br0")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for index, host in enumerate(self.hosts):
            port = f"v{index}"
            _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host)
            _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            _ip("-n", host, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
            _ip("-n", host, "link", "set", "eth0", "up")

    def close(self) -> None:
        for name in reversed(self._made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self._made.clear()

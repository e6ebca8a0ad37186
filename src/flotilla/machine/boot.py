"""Booting one machine in this process: what ``flotilla machine`` runs.

The order is a CoreOS boot's, with a contract at each step:

1. check the spec and validate the cloud-config — on any error nothing under the root has been touched;
2. empty ``<root>/run`` (a reboot empties /run), record the ``booting`` state, apply the cloud-config under
   the root, write the vendor units (``lib/systemd/system``) and Flotilla's ``30-flotilla.conf`` drop-ins;
3. start the guard, then the unit manager (``flotilla systemd --root``) as a child that dies with this
   process (see :mod:`flotilla.machine.guard`), inside the network namespace with ``netns``;
4. once the manager answers: reload, enable what the cloud-config enables, run its unit commands in order
   (``start etcd.service``, ``start fleet.service``, ...), then reach default.target as boot would;
5. ``running`` until SIGTERM/SIGINT (or the manager's death); then stop: SIGTERM to the manager, which stops
   every unit dependents first (fleet.service is ``After=`` the etcd units, so fleet stops before the
   store), wait for it, and sweep whatever is left. The process exits 0 after a clean stop.

Every step is reported as one line through ``echo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from flotilla.cloudinit import Applied, CloudConfig, CloudInitError, apply
from flotilla.systemd import Layout, ManagerClient, ManagerUnavailable, SystemdError

from . import vendor
from .errors import BootError
from .guard import sweep
from .spec import MachineSpec, check_spec, load_cloud_config
from .state import MachineState, read_state, write_state

_PR_SET_PDEATHSIG = 1
_MANAGER_READY_S = 30.0
_MANAGER_STOP_S = 90.0  # the manager's own stop timeouts (TimeoutStopSec) are shorter than this
_POLL_S = 0.05

Echo = Callable[[str], None]


@dataclass
class _Running:
    """The processes of a booted machine and where its state is recorded."""

    state: MachineState
    guard: subprocess.Popen[bytes]
    guard_fd: int
    manager: subprocess.Popen[bytes] | None = None

    def update(self, **changes: object) -> None:
        self.state = replace(self.state, **changes)  # type: ignore[arg-type]
        write_state(self.state)


def prepare(spec: MachineSpec) -> CloudConfig:
    """Step 1: BootError if the spec or the cloud-config is wrong, or the machine already runs."""
    check_spec(spec)
    config = load_cloud_config(spec)
    try:  # settings the vendor units cannot express are refused now, before anything is written
        vendor.etcd04_environment(dict(config.etcd), str(spec.root))
        vendor.vendor_units(
            vendor.VendorContext(str(spec.root), sys.executable, spec.ip, spec.advertised_ip, "0" * 32), ()
        )
    except vendor.VendorError as error:
        raise BootError(f"{spec.cloud_config}: {error}") from None
    state = read_state(spec.root) if spec.root.is_dir() else None
    if state is not None and state.is_alive and state.pid != os.getpid():
        raise BootError(
            f"{spec.root}: machine already running (pid {state.pid}); stop it first (kill -TERM {state.pid})"
        )
    return config


def install(spec: MachineSpec, config: CloudConfig, echo: Echo) -> tuple[Applied, MachineState]:
    """Step 2: the cloud-config and the vendor units under the root; returns what apply did."""
    shutil.rmtree(spec.root / "run", ignore_errors=True)
    ident = Layout.at(spec.root).machine_id()
    hostname = config.hostname or f"ip-{spec.ip.replace('.', '-').replace(':', '-')}"
    state = MachineState(
        root=str(spec.root), phase="booting", pid=os.getpid(), ip=spec.ip, public_ip=spec.advertised_ip,
        hostname=hostname, machine_id=ident, netns=spec.netns or "",
        fleet_socket=str(spec.root / "run/fleet.sock"),
    )  # fmt: skip
    write_state(state)
    try:
        applied = apply(config, spec.root, spec.substitutions)
    except CloudInitError as error:
        raise BootError(f"applying {spec.cloud_config} under {spec.root} failed: {error}") from error
    echo(f"cloud-config applied: {len(applied.written)} file(s) written under {spec.root}")
    endpoints = vendor.client_urls(applied.etcd, applied.etcd2, spec.ip)
    context = vendor.VendorContext(
        root=str(spec.root), python=sys.executable, ip=spec.ip, public_ip=spec.advertised_ip, machine_id=ident
    )
    layout = Layout.at(spec.root)
    layout.lib_units.mkdir(parents=True, exist_ok=True)
    for name, text in vendor.vendor_units(context, endpoints).items():
        (layout.lib_units / name).write_text(text)
    drop_ins = {
        "etcd.service": vendor.etcd04_environment(applied.etcd, str(spec.root)),
        "etcd2.service": vendor.etcd2_environment(applied.etcd2, str(spec.root)),
        "fleet.service": vendor.fleet_environment(applied.fleet, str(spec.root)),
    }
    for name, env in drop_ins.items():
        if env:
            folder = layout.run_units / f"{name}.d"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / vendor.DROP_IN_NAME).write_text(vendor.drop_in(env))
    echo(f"vendor units in {layout.lib_units}; store endpoints {','.join(endpoints)}")
    return applied, replace(state, etcd_endpoints=endpoints)


def _die_with_parent(parent: int) -> Callable[[], None]:
    def preexec() -> None:  # in the child between fork and exec
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def start_guard(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The guard process and the write end of its pipe (see flotilla.machine.guard)."""
    read_fd, write_fd = os.pipe()
    os.set_inheritable(read_fd, True)
    code = "import sys; from flotilla.machine.guard import main; sys.exit(main(sys.argv[1:]))"
    try:
        guard = subprocess.Popen(
            [sys.executable, "-c", code, str(root), str(read_fd)],
            pass_fds=(read_fd,), start_new_session=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        os.close(read_fd)
    return guard, write_fd


def start_manager(spec: MachineSpec, state: MachineState) -> subprocess.Popen[bytes]:
    """``flotilla systemd --root`` for the machine, killed by the kernel if this process dies."""
    argv = [sys.executable, "-m", "flotilla", "systemd", "--root", str(spec.root)]
    argv += ["--hostname", state.hostname]
    for name, value in (("COREOS_PRIVATE_IPV4", spec.ip), ("COREOS_PUBLIC_IPV4", spec.advertised_ip)):
        argv += ["--setenv", f"{name}={value}"]  # what units read from /etc/environment on CoreOS
    if spec.netns_path is not None:
        # nsenter switches the network namespace only; `ip netns exec` would also remount /sys and hide
        # the cgroup hierarchy the manager tracks units with. Both exec, so PDEATHSIG stays in force.
        argv = ["nsenter", f"--net={spec.netns_path}", "--", *argv]
    log_dir = spec.root / "var/log"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "flotilla-systemd.log", "ab") as log:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent(os.getpid()),
        )  # fmt: skip


async def wait_manager(root: Path, manager: subprocess.Popen[bytes]) -> None:
    """Until the manager answers on its socket; BootError if it exits or does not answer in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _MANAGER_READY_S
    while True:
        if manager.poll() is not None:
            raise BootError(
                f"the unit manager exited with status {manager.returncode} before answering; "
                f"see {root / 'var/log/flotilla-systemd.log'}"
            )
        with contextlib.suppress(ManagerUnavailable, OSError):
            async with ManagerClient(root, timeout_s=2.0) as client:
                await client.ping()
                return
        if loop.time() > deadline:
            raise BootError(f"the unit manager of {root} did not answer within {_MANAGER_READY_S:.0f} s")
        await asyncio.sleep(_POLL_S)


async def run_units(root: Path, applied: Applied, echo: Echo) -> list[str]:
    """Step 4; returns the lines it reported (a failed command is reported, not fatal, as on CoreOS)."""
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        echo(line)

    async with ManagerClient(root, timeout_s=120.0) as client:
        if applied.daemon_reload:
            await client.daemon_reload()
            say("daemon-reload: done")
        for unit in applied.enable:
            changes = await client.enable_unit(unit)
            say(f"enable {unit}: {'; '.join(changes) or 'nothing to do'}")
        for unit, command in applied.commands:
            say(f"{command} {unit}: {await _command(client, unit, command)}")
        if applied.enable:  # boot reaches multi-user.target after cloud-config has run
            result = await client.start_unit("default.target")
            say(f"start default.target: {result.result}")
    return lines


async def _command(client: ManagerClient, unit: str, command: str) -> str:
    if command in ("try-restart", "reload-or-try-restart"):
        status = await client.unit_status(unit)
        if status.active_state not in ("active", "activating", "reloading"):
            return "not active, nothing to do"
        command = "restart"
    if command == "start":
        result = await client.start_unit(unit)
    elif command == "stop":
        result = await client.stop_unit(unit)
    else:  # restart, reload, reload-or-restart: the manager has no reload job; a restart re-reads settings
        result = await client.restart_unit(unit)
    return result.result + (f" ({result.message})" if result.message else "")


async def run_machine(spec: MachineSpec, *, echo: Echo = print) -> int:
    """Boot ``spec``, run until SIGTERM/SIGINT, stop cleanly; returns the exit status (0 after a clean
    stop, 1 if the boot failed or the manager died). BootError before anything was written."""
    config = prepare(spec)
    echo(f"cloud-config {spec.cloud_config} is valid; booting {spec.root} as {spec.ip}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running: _Running | None = None
    try:
        applied, state = install(spec, config, echo)
        guard, guard_fd = start_guard(spec.root)
        running = _Running(state, guard, guard_fd)
        running.update(guard_pid=guard.pid)
        return await _boot_and_serve(spec, applied, running, stop, echo)
    except BootError as error:
        if running is None:
            with contextlib.suppress(OSError):
                state = read_state(spec.root)
                if state is not None and state.pid == os.getpid():
                    write_state(replace(state, phase="failed", detail=str(error)))
            raise
        running.update(phase="failed", detail=str(error))
        echo(f"boot failed: {error}")
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if running is not None:
            await _shut_down(spec, running, echo)


async def _boot_and_serve(
    spec: MachineSpec, applied: Applied, running: _Running, stop: asyncio.Event, echo: Echo
) -> int:
    running.manager = start_manager(spec, running.state)
    os.write(running.guard_fd, f"manager {running.manager.pid}\n".encode())
    running.update(manager_pid=running.manager.pid)
    where = f" in network namespace {spec.netns}" if spec.netns else ""
    echo(f"unit manager started (pid {running.manager.pid}){where}")
    boot = asyncio.ensure_future(_boot_units(spec, applied, running, echo))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({boot, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not boot.done():  # a signal during boot: abandon the remaining steps and stop
        boot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await boot
        stopped.cancel()
        echo("stop requested during boot")
        return 0
    stopped.cancel()
    boot.result()  # a BootError propagates
    echo(f"running: store {','.join(running.state.etcd_endpoints)}, fleet {running.state.fleet_socket}")
    while not stop.is_set():
        if running.manager.poll() is not None:
            running.update(phase="failed", detail=f"unit manager exited ({running.manager.returncode})")
            echo(f"the unit manager exited unexpectedly (status {running.manager.returncode})")
            return 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)
    return 0


async def _boot_units(spec: MachineSpec, applied: Applied, running: _Running, echo: Echo) -> None:
    assert running.manager is not None
    await wait_manager(spec.root, running.manager)
    echo("unit manager answers")
    try:
        steps = await run_units(spec.root, applied, echo)
    except SystemdError as error:
        raise BootError(f"the unit manager of {spec.root} stopped answering during boot: {error}") from error
    running.update(phase="running", steps=tuple(steps))


async def _shut_down(spec: MachineSpec, running: _Running, echo: Echo) -> None:
    """SIGTERM to the manager (it stops every unit, dependents first), then sweep what is left."""
    if running.state.phase != "failed":
        running.update(phase="stopping")
    manager = running.manager
    if manager is not None and manager.poll() is None:
        echo("stopping: the unit manager stops every unit, fleet before the store")
        manager.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _MANAGER_STOP_S
        while manager.poll() is None and loop.time() < deadline:
            await asyncio.sleep(_POLL_S)
        if manager.poll() is None:
            echo(f"the unit manager did not stop within {_MANAGER_STOP_S:.0f} s; killing it")
            manager.kill()
            manager.wait()
    killed = await asyncio.to_thread(sweep, spec.root, manager=manager.pid if manager else 0)
    if killed:
        echo(f"killed {killed} process(es) left behind")
    with contextlib.suppress(OSError):
        os.write(running.guard_fd, b"clean\n")
    os.close(running.guard_fd)  # EOF: the guard sweeps once more (finding nothing) and exits
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(running.guard.wait, 30)
    if running.state.phase != "failed":
        running.update(phase="stopped")
    echo("stopped")

"""Machines as processes: boot one (``flotilla machine`` in a child process), stop it cleanly, kill it like a
host failure — from the handle that booted it, or from its root directory alone (``flotilla kill``).

``MachineProcess.stop()`` sends SIGTERM and waits: the machine stops its units (fleet before the store) and
exits 0. ``kill()`` is a host dying: SIGKILL to the machine process, then :func:`flotilla.machine.guard.sweep`
SIGKILLs its unit manager and every unit process, so nothing of the machine answers afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from .errors import BootError, MachineNotRunning
from .guard import machine_pids, sweep
from .spec import MachineSpec, check_spec
from .state import MachineState, process_alive, read_state, write_state

_POLL_S = 0.05


def machine_argv(spec: MachineSpec) -> list[str]:
    """The command line that boots ``spec`` (``python -m flotilla machine ...``)."""
    argv = [sys.executable, "-m", "flotilla", "machine", "--root", str(spec.root)]
    argv += ["--cloud-config", str(spec.cloud_config.absolute()), "--ip", spec.ip]
    if spec.public_ip:
        argv += ["--public-ip", spec.public_ip]
    if spec.netns:
        argv += ["--netns", spec.netns]
    return argv


class MachineProcess:
    """A ``flotilla machine`` child process booted by :func:`boot`."""

    def __init__(self, spec: MachineSpec, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.spec = spec
        self.process = process
        self.log_path = log_path

    def __repr__(self) -> str:
        return f"<MachineProcess {self.spec.root} {self.spec.ip} pid={self.pid}>"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def state(self) -> MachineState | None:
        return read_state(self.spec.root)

    def poll(self) -> int | None:
        return self.process.poll()

    def log(self) -> str:
        """What the machine printed so far (one line per boot step)."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def wait_running(self, timeout_s: float = 60.0) -> MachineState:
        """Until the machine reports ``running`` (its unit commands ran); BootError if it exits or fails."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = read_state(self.spec.root)
            if state is not None and state.pid == self.pid and state.phase == "running":
                return state
            if self.process.poll() is not None or (state is not None and state.phase == "failed"):
                raise BootError(f"machine {self.spec.root} did not boot:\n{self.log().rstrip()}")
            if time.monotonic() > deadline:
                raise BootError(
                    f"machine {self.spec.root} not running after {timeout_s:.0f} s:\n{self.log()}"
                )
            time.sleep(_POLL_S)

    def stop(self, timeout_s: float = 120.0) -> int:
        """A clean shutdown (SIGTERM); returns the exit status. Kills the machine if it overruns."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode if self.process.returncode is not None else -signal.SIGKILL

    def kill(self) -> None:
        """A host failure: every process of the machine gets SIGKILL, now."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        _finish_kill(self.spec.root)

    def pids(self) -> set[int]:
        """Every live process of the machine: its own, its unit manager's and its units'."""
        found = machine_pids(self.spec.root)
        if self.process.poll() is None:
            found.add(self.pid)
        return found


def boot(
    spec: MachineSpec,
    *,
    log_path: Path | None = None,
    wait: bool = True,
    timeout_s: float = 60.0,
    detach: bool = False,
) -> MachineProcess:
    """Start ``flotilla machine`` for ``spec`` and (with ``wait``) return once it is running.

    Its output goes to ``log_path`` (default ``<root>.log`` beside the root, so it survives the root's
    ``run/`` being emptied). ``detach`` puts it in its own session so it outlives the caller's terminal
    (what ``flotilla up`` wants). BootError, with the machine's output, if it does not boot."""
    check_spec(spec)
    log_path = log_path or spec.root.with_name(spec.root.name + ".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            machine_argv(spec), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=detach,
        )  # fmt: skip
    machine = MachineProcess(spec, process, log_path)
    if wait:
        try:
            machine.wait_running(timeout_s)
        except BaseException:
            machine.kill()
            raise
    return machine


def _finish_kill(root: Path) -> None:
    sweep(root)
    state = read_state(root)
    if state is not None and state.phase != "killed":
        with contextlib.suppress(OSError):
            write_state(replace(state, phase="killed"))


def kill_machine(root: str | Path) -> MachineState:
    """Kill the machine of ``root`` as a host failure (``flotilla kill``); MachineNotRunning if none runs."""
    root = Path(root).absolute()
    state = read_state(root)
    if state is None or (not state.is_alive and not machine_pids(root)):
        raise MachineNotRunning(f"{root}: no machine runs there (state: {state.phase if state else 'none'})")
    if state.is_alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGKILL)
        while process_alive(state.pid):  # reaped by its parent, or a zombie until then
            time.sleep(_POLL_S)
    _finish_kill(root)
    return read_state(root) or state


def stop_machine(root: str | Path, timeout_s: float = 120.0) -> MachineState:
    """Stop the machine of ``root`` cleanly (SIGTERM, as ``flotilla down``); kill it if it overruns."""
    root = Path(root).absolute()
    state = read_state(root)
    if state is None or not state.is_alive:
        raise MachineNotRunning(f"{root}: no machine runs there (state: {state.phase if state else 'none'})")
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while process_alive(state.pid):
        if time.monotonic() > deadline:
            return kill_machine(root)
        time.sleep(_POLL_S)
    return read_state(root) or state

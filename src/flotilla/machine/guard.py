"""How a machine dies like a host: nothing of it survives its ``flotilla machine`` process.

A machine is a tree of processes that do not share a process group: the `flotilla machine` process (M),
its unit manager (S, own session) and the units S starts (each in its own session, possibly double-forked
daemons). Three mechanisms together make ``kill -9 M`` end all of them:

1. S is started with ``PR_SET_PDEATHSIG = SIGKILL``: the kernel kills it the moment M dies, so no unit is
   restarted and nothing answers on the machine's socket afterwards;
2. a guard process (``python -m flotilla.machine.guard ROOT FD``, own session, started by M before S) holds
   the read end of a pipe whose only write end M holds. When M dies, by any signal, the read returns EOF
   and the guard sweeps: it SIGKILLs S and every process of S's units, found by S's cgroup
   (``<cgroup2>/flotilla/<tag>/*``, ``cgroup.kill`` where the kernel has it) and by the unit tag every unit
   process carries in its environment (``FLOTILLA_UNIT_TAG=<tag>:<unit>``, inherited across fork/exec);
   it repeats until a sweep finds nothing (a unit may fork while being killed), then exits;
3. :func:`sweep` is also what ``MachineProcess.kill()`` and ``kill_machine(root)`` call themselves, so a
   kill from the Python API does not depend on the guard having survived.

A clean stop ends the same way: M writes ``clean`` to the pipe before exiting, the guard's sweep then finds
nothing to kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from flotilla.systemd.layout import Layout
from flotilla.systemd.procs import cgroup_hierarchy

from .state import process_alive, read_state

_TAG_VARIABLE = b"FLOTILLA_UNIT_TAG="  # set by flotilla.systemd.procs on every unit process
_SWEEP_ROUNDS = 200
_SWEEP_PAUSE_S = 0.02


def _unit_cgroups(root: str | Path) -> list[Path]:
    hierarchy = cgroup_hierarchy()
    if hierarchy is None:
        return []
    base = hierarchy / "flotilla" / Layout.at(root).instance_tag
    if not base.is_dir():
        return []
    return [child for child in base.iterdir() if child.is_dir()]


def _tagged(tag: str) -> set[int]:
    wanted = _TAG_VARIABLE + tag.encode() + b":"
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if any(var.startswith(wanted) for var in environ.split(b"\0")):
            found.add(int(entry.name))
    return found


def _is_manager(pid: int, root: str | Path) -> bool:
    """Whether ``pid`` still is this machine's unit manager (and not a process that reused its PID)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"systemd" in argv and str(Layout.at(root).root).encode() in argv


def manager_pid(root: str | Path) -> int:
    """The machine's unit manager's PID from its state or pid file, 0 if none is known."""
    state = read_state(root)
    if state is not None and state.manager_pid:
        return state.manager_pid
    with contextlib.suppress(OSError, ValueError):
        return int(Layout.at(root).pid_file.read_text().strip())
    return 0


def machine_pids(root: str | Path, *, manager: int = 0) -> set[int]:
    """Every live process of the machine below its `flotilla machine` process: the manager and units."""
    found = set()
    manager = manager or manager_pid(root)
    if manager and process_alive(manager) and _is_manager(manager, root):
        found.add(manager)
    for cgroup in _unit_cgroups(root):
        with contextlib.suppress(OSError, ValueError):
            found.update(int(line) for line in (cgroup / "cgroup.procs").read_text().split())
    found.update(_tagged(Layout.at(root).instance_tag))
    return {pid for pid in found if process_alive(pid) and pid != os.getpid()}


def sweep(root: str | Path, *, manager: int = 0) -> int:
    """SIGKILL the machine's manager and every unit process until none is left; returns how many were sent.

    A killed process loses its environment (so its tag) before it is a zombie: the PIDs signalled are
    watched until they are gone too. RuntimeError if processes survive every round."""
    sent: set[int] = set()
    for _ in range(_SWEEP_ROUNDS):
        for cgroup in _unit_cgroups(root):
            with contextlib.suppress(OSError):
                (cgroup / "cgroup.kill").write_text("1")  # the kernel kills the whole cgroup at once
        pids = machine_pids(root, manager=manager)
        if not pids and not any(process_alive(pid) for pid in sent):
            _remove_cgroups(root)
            return len(sent)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                sent.add(pid)
        time.sleep(_SWEEP_PAUSE_S)
    left = machine_pids(root, manager=manager) | {pid for pid in sent if process_alive(pid)}
    if left:
        raise RuntimeError(f"{root}: processes {sorted(left)} survive SIGKILL; look at them with ps")
    return len(sent)


def _remove_cgroups(root: str | Path) -> None:
    """Remove the manager's emptied cgroups; a killed process leaves its cgroup only once it is reaped,
    which its new parent does a moment later, so a busy cgroup is retried for a short while."""
    cgroups = _unit_cgroups(root)
    for _ in range(_SWEEP_ROUNDS):
        for cgroup in list(cgroups):
            with contextlib.suppress(FileNotFoundError):
                try:
                    cgroup.rmdir()
                except OSError:
                    continue
            cgroups.remove(cgroup)
        if not cgroups:
            break
        time.sleep(_SWEEP_PAUSE_S)
    hierarchy = cgroup_hierarchy()
    if hierarchy is not None:
        with contextlib.suppress(OSError):
            (hierarchy / "flotilla" / Layout.at(root).instance_tag).rmdir()


def _watch(root: str, fd: int) -> None:
    """Block until the machine process is gone (EOF on the pipe), then sweep."""
    manager = 0
    buffered = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            word, _, value = line.decode().partition(" ")
            if word == "manager" and value.isdigit():
                manager = int(value)
    sweep(root, manager=manager)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m flotilla.machine.guard ROOT FD", file=sys.stderr)
        return 2
    # The guard outlives the machine on purpose: a terminal's Ctrl-C or a hang-up must not stop it first.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    _watch(argv[0], int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

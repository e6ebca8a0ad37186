"""What a running machine tells the world about itself: ``<root>/run/flotilla-machine/state.json``.

The ``flotilla machine`` process rewrites the file (atomically: a temporary file renamed over it) at every
phase, so another process — ``flotilla status``, ``flotilla kill``, a test — can find its processes and
endpoints from the root directory alone. Phases: ``booting`` → ``running`` → ``stopping`` → ``stopped``;
``failed`` when a boot step failed (``detail`` says which); ``killed`` after a host-failure kill.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

PHASES = ("booting", "running", "stopping", "stopped", "failed", "killed")


def state_dir(root: str | Path) -> Path:
    return Path(root).absolute() / "run/flotilla-machine"


def state_path(root: str | Path) -> Path:
    return state_dir(root) / "state.json"


@dataclass(frozen=True)
class MachineState:
    """One machine as its ``flotilla machine`` process last described it."""

    root: str
    phase: str
    pid: int  # the `flotilla machine` process
    manager_pid: int = 0  # its unit manager (`flotilla systemd --root`)
    guard_pid: int = 0  # the process that cleans up if the machine dies (see flotilla.machine.guard)
    ip: str = ""
    public_ip: str = ""
    hostname: str = ""
    machine_id: str = ""
    netns: str = ""
    etcd_endpoints: tuple[str, ...] = ()
    fleet_socket: str = ""
    detail: str = ""
    steps: tuple[str, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> MachineState:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in ("etcd_endpoints", "steps"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)

    @property
    def is_alive(self) -> bool:
        """Whether the `flotilla machine` process still runs (a zombie, or a PID reused by another
        program after a host-failure kill, counts as gone)."""
        if not process_alive(self.pid):
            return False
        try:
            with open(f"/proc/{self.pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return False
        return b"machine" in argv  # the --root given may have been relative: not compared


def read_state(root: str | Path) -> MachineState | None:
    """The machine's last state, or None if it never got past validating its cloud-config."""
    try:
        return MachineState.from_json(state_path(root).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as error:
        raise OSError(f"{state_path(root)}: unreadable machine state ({error}); remove it") from error


def write_state(state: MachineState) -> None:
    path = state_path(state.root)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".state.{os.getpid()}.json")
    temp.write_text(state.to_json())
    os.replace(temp, path)


def process_alive(pid: int) -> bool:
    """True for a running process; False for none, or a zombie (already dead, not yet reaped)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def remove_state(root: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(root).unlink()

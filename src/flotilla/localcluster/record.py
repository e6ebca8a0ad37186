"""What ``flotilla up`` leaves in its state directory, so ``status``, ``kill`` and ``down`` can find the
cluster later from the directory alone.

Layout of the state directory (default ``$FLOTILLA_STATE_DIR`` or ``~/.flotilla``)::

    cluster.json        this record (rewritten atomically)
    discovery/          the discovery service's data; discovery.log its output
    m1/, m2/, ...       each machine's root (its journal in m1/var/log/journal)
    m1.log, ...         each machine's own output (one line per boot step)
    m1.yaml, ...        the cloud-config each machine booted from

The record is written before anything starts, then updated as the discovery service and the machines
come up, so a ``down`` after an interrupted ``up`` still finds whatever was started.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

RECORD_NAME = "cluster.json"


def default_state_dir() -> Path:
    """``$FLOTILLA_STATE_DIR``, or ``~/.flotilla``."""
    configured = os.environ.get("FLOTILLA_STATE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".flotilla"


@dataclass(frozen=True)
class MachineEntry:
    """One machine of the cluster: its name (m1), address, root directory and cloud-config file."""

    name: str
    ip: str
    root: str
    cloud_config: str
    log: str


@dataclass(frozen=True)
class ClusterRecord:
    """The cluster of one state directory."""

    state_dir: str
    size: int
    client_port: int
    peer_port: int
    cloud_config_source: str = ""  # the user's --cloud-config, "" for the default one
    discovery_pid: int = 0
    discovery_url: str = ""
    token_url: str = ""
    machines: tuple[MachineEntry, ...] = field(default=())

    @property
    def discovery_data_dir(self) -> Path:
        return Path(self.state_dir) / "discovery"

    @property
    def discovery_log(self) -> Path:
        return Path(self.state_dir) / "discovery.log"

    def with_machine(self, entry: MachineEntry) -> ClusterRecord:
        return replace(self, machines=(*self.machines, entry))

    def find(self, name_or_ip: str) -> MachineEntry | None:
        """The machine called ``name_or_ip`` (m2), at that address (127.0.0.3), or shown that way by
        fleetctl's MACHINE column (``2c5b6a0e.../127.0.0.3``)."""
        wanted = name_or_ip.strip().rsplit("/", 1)[-1]
        return next((m for m in self.machines if wanted in (m.name, m.ip)), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ClusterRecord:
        data = json.loads(text)
        machines = tuple(MachineEntry(**m) for m in data.pop("machines", ()))
        return cls(**data, machines=machines)


def record_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / RECORD_NAME


def read_record(state_dir: str | Path) -> ClusterRecord | None:
    """The cluster of ``state_dir``, None when ``up`` never ran there (or ``down --purge`` removed it)."""
    path = record_path(state_dir)
    try:
        return ClusterRecord.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise OSError(
            f"{path}: unreadable cluster record ({error}); remove {state_dir} or pick another"
        ) from error


def write_record(record: ClusterRecord) -> None:
    path = record_path(record.state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{RECORD_NAME}.{os.getpid()}")
    temp.write_text(record.to_json())
    os.replace(temp, path)

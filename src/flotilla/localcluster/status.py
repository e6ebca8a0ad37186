"""``flotilla status``: the cluster of a state directory as its machines, the live store and fleet see it."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path

from flotilla.fleetctl import run as fleetctl_run
from flotilla.machine import read_state

from . import probe
from .cluster import require_record
from .discovery import discovery_alive
from .record import ClusterRecord
from .report import MachineRow, MemberRow, machines_table, members_table

_LIVE_PHASES = ("booting", "running", "stopping")


@dataclass(frozen=True)
class ClusterStatus:
    """One look at the cluster: ``members`` None when no store member answers, ``units`` the output of
    ``fleetctl list-units`` from a live machine ("" when no fleetd answers)."""

    record: ClusterRecord
    machines: tuple[MachineRow, ...]
    members: tuple[MemberRow, ...] | None
    units: str
    discovery_running: bool

    @property
    def running(self) -> int:
        return sum(1 for m in self.machines if m.phase in _LIVE_PHASES)


def _machine_rows(record: ClusterRecord) -> tuple[list[MachineRow], list[str], list[str]]:
    rows, endpoints, sockets = [], [], []
    for entry in record.machines:
        state = read_state(entry.root)
        if state is None:
            rows.append(MachineRow(entry.name, entry.ip, "not booted", 0))
            continue
        alive = state.is_alive
        phase = state.phase if alive or state.phase not in _LIVE_PHASES else "dead"
        rows.append(MachineRow(entry.name, entry.ip, phase, state.pid if alive else 0))
        if alive and state.phase == "running":
            endpoints += state.etcd_endpoints
            sockets.append(state.fleet_socket)
    return rows, endpoints, sockets


def _units(sockets: list[str]) -> str:
    for fleet_socket in sockets:
        out, err = io.StringIO(), io.StringIO()
        if fleetctl_run([f"--endpoint=unix://{fleet_socket}", "list-units"], env={}, out=out, err=err) == 0:
            return out.getvalue()
    return ""


def cluster_status(state_dir: str | Path) -> ClusterStatus:
    """NoCluster if ``up`` never ran in ``state_dir``."""
    record = require_record(state_dir)
    rows, endpoints, sockets = _machine_rows(record)
    members = asyncio.run(probe.store_members(endpoints)) if endpoints else None
    return ClusterStatus(
        record=record, machines=tuple(rows), members=tuple(members) if members is not None else None,
        units=_units(sockets), discovery_running=discovery_alive(record),
    )  # fmt: skip


def format_status(status: ClusterStatus) -> str:
    record = status.record
    parts = [f"Cluster in {record.state_dir}: {status.running} of {len(status.machines)} machines running"]
    parts.append(
        f"discovery service: {record.discovery_url} (running)" if status.discovery_running
        else "discovery service: not running"
    )  # fmt: skip
    head = "\n".join(parts)
    members = members_table(status.members) if status.members is not None else "store: no member answers"
    units = status.units or "fleet: no fleetd answers"
    sections = (head, machines_table(status.machines), members, units)
    return "\n\n".join(section.rstrip("\n") for section in sections) + "\n"

"""What ``flotilla up`` and ``flotilla status`` print (pure: values in, text out, no I/O)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class MemberRow:
    """One store member as ``flotilla status`` shows it."""

    name: str
    client_urls: tuple[str, ...]
    is_leader: bool


@dataclass(frozen=True)
class MachineRow:
    """One machine as ``flotilla status`` shows it."""

    name: str
    ip: str
    phase: str
    pid: int


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    return "\n".join(lines) + "\n"


def machines_table(rows: Sequence[MachineRow]) -> str:
    table = [["MACHINE", "IP", "PHASE", "PID"]]
    table += [[r.name, r.ip, r.phase, str(r.pid) if r.pid else "-"] for r in rows]
    return _table(table)


def members_table(rows: Sequence[MemberRow]) -> str:
    table = [["MEMBER", "CLIENT URLS", "LEADER"]]
    table += [[r.name or "(unstarted)", ",".join(r.client_urls) or "-", "yes" if r.is_leader else "no"]
              for r in rows]  # fmt: skip
    return _table(table)


def next_steps(
    *,
    etcd_endpoints: Sequence[str],
    activate: str = "",
    state_dir_export: str = "",
) -> str:
    """The lines to type next: the exports for etcdctl and fleetctl, a curl of the v2 keys API, status
    and down. fleetctl uses its etcd driver on every member rather than one machine's API socket, so it
    keeps working when the walkthrough kills a machine (maybe the one whose socket it would use).
    ``activate`` is the venv's activate script when flotilla's commands are not on PATH;
    ``state_dir_export`` the state directory when it is not the default one."""
    lines = []
    if activate:
        lines.append(f"source {shlex.quote(activate)}")
    if state_dir_export:
        lines.append(f"export FLOTILLA_STATE_DIR={shlex.quote(state_dir_export)}")
    lines.append(f"export ETCDCTL_API=3 ETCDCTL_ENDPOINTS={','.join(etcd_endpoints)}")
    lines.append(f"export FLEETCTL_DRIVER=etcd FLEETCTL_ENDPOINT={','.join(etcd_endpoints)}")
    first = etcd_endpoints[0] if etcd_endpoints else "http://127.0.0.2:2379"
    lines.append(f'curl -L {first}/v2/keys/message -XPUT -d value="Hello world"')
    lines.append("flotilla status")
    lines.append("flotilla down")
    return "\n".join(f"  {line}" for line in lines) + "\n"

"""Questions ``up`` and ``status`` ask the live cluster: its store members and leader (etcd's v3 API,
through :class:`flotilla.client.EtcdClient`) and the machines fleet sees (fleet's HTTP API on a machine's
unix socket). Each answers None when the cluster cannot say yet, so callers poll."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from flotilla.client import ClientError, EtcdClient
from flotilla.fleetctl import FleetctlError, HttpAPI, MachineInfo

from .report import MemberRow

_CALL_S = 2.0


async def store_members(endpoints: Sequence[str]) -> list[MemberRow] | None:
    """The members, the leader marked, or None when no endpoint answers or there is no leader yet."""
    if not endpoints:
        return None
    client = EtcdClient(list(endpoints), timeout_s=_CALL_S)
    try:
        members = await client.member_list()
        status = await client.status()
    except (ClientError, OSError):
        return None
    finally:
        with contextlib.suppress(Exception):  # closing channels of dead endpoints must not hide the answer
            await client.close()
    if not status.leader:
        return None
    return [MemberRow(m.name, tuple(m.client_urls), m.id == status.leader) for m in members]


async def fleet_machines(socket: str) -> list[MachineInfo] | None:
    """The machines fleet sees through ``socket``, or None when that fleetd does not answer."""
    api = HttpAPI(f"unix://{socket}", timeout_s=_CALL_S)
    try:
        return await api.machines()
    except (FleetctlError, OSError):
        return None
    finally:
        with contextlib.suppress(Exception):
            await api.close()

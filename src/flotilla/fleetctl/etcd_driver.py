"""``--driver=etcd``: fleetctl straight on the store, through fleet's registry (fleet's RegistryClient).

Every read is one registry snapshot, so a unit's desired state, target and current state shown together
come from the same revision.
"""

from __future__ import annotations

import json

from flotilla.client import ClientError, Compare, EtcdClient, Op
from flotilla.fleet.model import Unit
from flotilla.fleet.registry import Registry, RegistrySnapshot
from flotilla.fleetctl.model import FleetctlError, MachineInfo, UnitInfo, UnitStateInfo
from flotilla.units import UnitError, parse_unit_text_fleet

__all__ = ["RegistryAPI"]


class RegistryAPI:
    """fleet's client.API over ``Registry`` (the etcd v3 API through ``flotilla.client``)."""

    def __init__(self, client: EtcdClient, prefix: str) -> None:
        self.client = client
        self.registry = Registry(client, prefix)

    async def close(self) -> None:
        await self.client.close()

    async def _snapshot(self) -> RegistrySnapshot:
        try:
            return await self.registry.snapshot()
        except ClientError as error:
            raise FleetctlError(str(error)) from error

    async def machines(self) -> list[MachineInfo]:
        snapshot = await self._snapshot()
        return [MachineInfo(m.id, m.public_ip, dict(m.metadata)) for m in snapshot.cluster.machines]

    async def unit(self, name: str) -> UnitInfo | None:
        snapshot = await self._snapshot()
        unit = snapshot.cluster.unit(name)
        return None if unit is None else _unit_info(snapshot, unit)

    async def units(self) -> list[UnitInfo]:
        snapshot = await self._snapshot()
        return [_unit_info(snapshot, unit) for unit in snapshot.cluster.units]

    async def unit_states(self, unit_name: str | None = None) -> list[UnitStateInfo]:
        snapshot = await self._snapshot()
        states = [
            UnitStateInfo(s.name, s.hash, s.machine_id, s.load_state, s.active_state, s.sub_state)
            for s in (record.state for record in snapshot.states)
            if unit_name is None or s.name == unit_name
        ]
        return sorted(states, key=lambda s: (s.name, s.machine_id))

    async def set_unit_target_state(self, name: str, state: str) -> None:
        try:
            found = await self.registry.set_desired_state(name, state)
        except ClientError as error:
            raise FleetctlError(str(error)) from error
        if not found:
            raise FleetctlError(f"unit {name} does not exist")

    async def create_unit(self, unit: UnitInfo) -> None:
        try:
            model = Unit.from_text(unit.name, unit.text, unit.desired_state or "inactive")
        except (UnitError, ValueError) as error:
            raise FleetctlError(str(error)) from error
        try:
            if not await self.registry.create_unit(model):
                await self._replace(model)
        except ClientError as error:
            raise FleetctlError(str(error)) from error

    async def _replace(self, unit: Unit) -> None:
        # fleet's registry overwrites the job object in place (PrevIgnore), keeping the target, so the
        # agent sees a new hash and reloads the unit where it runs. The Registry only offers an atomic
        # create, so the overwrite is written here, in the registry's key layout.
        prefix = self.registry.prefix
        job = f"{prefix}job/{unit.name}/"
        result = await self.client.txn(
            compare=[Compare.create_revision(job + "object") > 0],
            success=[
                Op.put(f"{prefix}unit/{unit.hash}", json.dumps({"Raw": unit.text}, separators=(",", ":"))),
                Op.put(job + "object", json.dumps({"Name": unit.name, "UnitHash": unit.hash})),
                Op.put(job + "target-state", unit.desired_state),
            ],
        )
        if not result.succeeded:
            raise FleetctlError(f"unit {unit.name} was destroyed while it was being replaced; retry")

    async def destroy_unit(self, name: str) -> bool:
        try:
            return await self.registry.destroy_unit(name)
        except ClientError as error:
            raise FleetctlError(str(error)) from error


def _unit_info(snapshot: RegistrySnapshot, unit: Unit) -> UnitInfo:
    current = snapshot.current_state(unit.name)
    return UnitInfo(
        unit.name,
        tuple(parse_unit_text_fleet(unit.text, path=unit.name).options),
        unit.desired_state,
        "" if current == "-" else current,  # fleet reports no current state for global units
        snapshot.cluster.targets.get(unit.name, ""),
        snapshot.unschedulable.get(unit.name, ""),
    )

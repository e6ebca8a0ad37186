"""What fleetctl works with, whichever driver fetched it: fleet's API v1 schema objects (schema/v1.json)
as frozen values, and ``FleetAPI``, the Protocol of fleet's ``client.API`` that both drivers implement.

Keeping the commands on these values (and not on the registry's own types) is what lets one command run
unchanged over the HTTP API and straight on the store, as fleetctl's ``--driver`` promises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from flotilla.units import Option, UnitError, UnitFile, fleet_options, unit_hash

__all__ = ["FleetAPI", "FleetctlError", "MachineInfo", "UnitInfo", "UnitStateInfo"]


class FleetctlError(Exception):
    """A request fleetctl could not complete; the message is printed after fleet's own prefix."""


@dataclass(frozen=True)
class MachineInfo:
    """fleet's Machine: ``{id, primaryIP, metadata}``."""

    id: str
    public_ip: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[:8]


@dataclass(frozen=True)
class UnitStateInfo:
    """fleet's UnitState: systemd's LOAD/ACTIVE/SUB of a unit on one machine, and the hash it loaded."""

    name: str
    hash: str = ""
    machine_id: str = ""
    load_state: str = ""
    active_state: str = ""
    sub_state: str = ""


@dataclass(frozen=True)
class UnitInfo:
    """fleet's Unit: its options, desired and current state, and target machine (empty when none).
    ``unschedulable_reason`` is ours: why the engine cannot place it (fleet left users waiting, #1348)."""

    name: str
    options: tuple[Option, ...] = ()
    desired_state: str = ""
    current_state: str = ""
    machine_id: str = ""
    unschedulable_reason: str = ""

    @cached_property
    def unit_file(self) -> UnitFile:
        return UnitFile.from_options(self.options, path=self.name)

    @property
    def text(self) -> str:
        """The unit file as fleet serializes its options (what ``fleetctl cat`` prints)."""
        return self.unit_file.to_text()

    @property
    def hash(self) -> str:
        return unit_hash(self.unit_file)

    @property
    def description(self) -> str:
        return self.unit_file.get("Unit", "Description") or ""

    @cached_property
    def is_global(self) -> bool:
        try:
            return fleet_options(self.unit_file, None).global_
        except UnitError:
            return False  # a unit fleet cannot read is scheduled (or refused) as a plain unit


class FleetAPI(Protocol):
    """fleet's client.API (client/api.go). Every method raises ``FleetctlError`` when the request fails;
    ``unit`` answers None for a unit that does not exist. Lists are ordered as fleet orders them: machines
    by ID, units by name, states by unit name then machine."""

    async def machines(self) -> list[MachineInfo]: ...

    async def unit(self, name: str) -> UnitInfo | None: ...

    async def units(self) -> list[UnitInfo]: ...

    async def unit_states(self, unit_name: str | None = None) -> list[UnitStateInfo]: ...

    async def set_unit_target_state(self, name: str, state: str) -> None: ...

    async def create_unit(self, unit: UnitInfo) -> None:
        """Create the unit, or replace the one of that name with these options (fleet's PUT)."""
        ...

    async def destroy_unit(self, name: str) -> bool:
        """False if there was no such unit."""
        ...

    async def close(self) -> None: ...

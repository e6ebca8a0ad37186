"""Commands that only read: list-machines, list-units, list-unit-files and cat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flotilla.fleetctl.context import Context
from flotilla.fleetctl.model import FleetctlError
from flotilla.fleetctl.names import unit_name_mangle
from flotilla.fleetctl.output import MACHINE_FIELDS, UNIT_FILE_FIELDS, UNIT_STATE_FIELDS, render_table

__all__ = ["run_cat", "run_list_machines", "run_list_unit_files", "run_list_units"]


def _columns(ctx: Context, known: dict[str, Any]) -> list[str] | None:
    fields = ctx.flags["fields"]
    if not fields:
        ctx.stderr("Must define output format")
        return None
    columns = fields.split(",")
    for column in columns:
        if column not in known:
            ctx.stderr(f'Invalid key in output format: "{column}"')
            return None
    return columns


async def _table(ctx: Context, columns: list[str], items: list, fields: dict[str, Callable]) -> None:
    machines = (
        await ctx.machines_by_id() if any(c in ("machine", "target", "tmachine") for c in columns) else {}
    )
    full = bool(ctx.flags.get("full"))
    rows = [[fields[c](item, machines.get, full) for c in columns] for item in items]
    ctx.out.write(render_table(columns, rows, bool(ctx.flags.get("no-legend"))))
    ctx.out.flush()


async def run_list_machines(ctx: Context, args: list[str]) -> int:
    columns = _columns(ctx, MACHINE_FIELDS)
    if columns is None:
        return 1
    try:
        machines = await ctx.api.machines()
    except FleetctlError as error:
        ctx.stderr(f"Error retrieving list of active machines from fleet API ({error})")
        ctx.stderr("Possible issues:")
        ctx.stderr("  etcd is unhealthy and/or lost quorum")
        ctx.stderr("  connection cannot be established to any etcd servers")
        return 1
    await _table(ctx, columns, machines, MACHINE_FIELDS)
    return 0


async def run_list_units(ctx: Context, args: list[str]) -> int:
    columns = _columns(ctx, UNIT_STATE_FIELDS)
    if columns is None:
        return 1
    try:
        states = await ctx.api.unit_states()
    except FleetctlError as error:
        ctx.stderr(f"Error retrieving list of units from repository: {error}")
        return 1
    await _table(ctx, columns, states, UNIT_STATE_FIELDS)
    return 0


async def run_list_unit_files(ctx: Context, args: list[str]) -> int:
    columns = _columns(ctx, UNIT_FILE_FIELDS)
    if columns is None:
        return 1
    if "tmachine" in columns:
        ctx.stderr('WARNING: The "tmachine" field is deprecated. Use "target" instead')
    try:
        units = await ctx.api.units()
    except FleetctlError as error:
        ctx.stderr(f"Error retrieving list of units from repository: {error}")
        return 1
    await _table(ctx, columns, units, UNIT_FILE_FIELDS)
    return 0


async def run_cat(ctx: Context, args: list[str]) -> int:
    if len(args) != 1:
        ctx.stderr("One unit file must be provided")
        return 1
    name = unit_name_mangle(args[0])
    try:
        unit = await ctx.api.unit(name)
    except FleetctlError as error:
        ctx.stderr(f"Error retrieving Unit {name}: {error}")
        return 1
    if unit is None:
        ctx.stderr(f"Unit {name} not found")
        return 1
    ctx.out.write(unit.text)  # the unit as fleet serializes it, byte for byte: no newline added
    ctx.out.flush()
    return 0

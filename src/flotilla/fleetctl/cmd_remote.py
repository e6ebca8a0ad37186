"""Commands that run something on a unit's machine: status, journal, ssh (and restart of global units).

fleetctl runs ``systemctl``/``journalctl`` on the machine over SSH. Flotilla has no SSH: a machine's unit
manager is reachable only where its root directory is, so these commands run ``flotilla systemctl`` /
``flotilla journalctl`` locally against the root the machine advertises in its metadata key
``flotilla_systemd_root`` (DESIGN decision 9: anything that executes commands is local). A machine
without that key is reported with fleet's "Unable to SSH to remote host" error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import TextIO

from flotilla.fleetctl.context import Context
from flotilla.fleetctl.model import FleetctlError, MachineInfo
from flotilla.fleetctl.names import unit_name_mangle

__all__ = ["ROOT_METADATA_KEY", "run_journal", "run_on_unit_machines", "run_ssh", "run_status"]

ROOT_METADATA_KEY = "flotilla_systemd_root"


async def _machine_root(ctx: Context, machine_id: str) -> tuple[MachineInfo, str] | None:
    machine = await ctx.machine(machine_id)
    if machine is None:
        ctx.stderr(f"Error getting machine IP: machine {machine_id or '(none)'} is not in the cluster")
        return None
    root = machine.metadata.get(ROOT_METADATA_KEY, "")
    if not root:
        ctx.stderr(
            f"Unable to SSH to remote host: Flotilla has no SSH and machine {machine.short_id} does not "
            f"advertise a local unit manager root; start its fleetd with metadata "
            f"{ROOT_METADATA_KEY}=<its systemd --root> to run this command there from this host"
        )
        return None
    return machine, root


async def _pump(stream: asyncio.StreamReader, out: TextIO) -> None:
    while line := await stream.readline():
        out.write(line.decode("utf-8", "replace"))
        out.flush()


async def _run_local(ctx: Context, argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``argv`` here, copying its output to the command's streams as it comes (``journal -f``
    streams until interrupted; the child never outlives fleetctl)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
    except OSError as error:
        ctx.stderr(f"Error running local command: {error}")
        return 1
    try:
        await asyncio.gather(_pump(proc.stdout, ctx.out), _pump(proc.stderr, ctx.err))
        return await proc.wait()
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(ProcessLookupError):
                await asyncio.shield(proc.wait())


def _flotilla(tool: str, root: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "flotilla.cli.main", tool, "--root", root, *args]


async def _run_on_machine(ctx: Context, machine_id: str, tool: str, *args: str) -> int:
    found = await _machine_root(ctx, machine_id)
    if found is None:
        return 1
    return await _run_local(ctx, _flotilla(tool, found[1], *args))


async def run_on_unit_machines(ctx: Context, name: str, systemctl_args: list[str]) -> int:
    """``flotilla systemctl ARGS`` on every machine that reports a state for ``name`` (a global unit)."""
    exit_code = 0
    for state in await ctx.api.unit_states(name):
        exit_code = exit_code or await _run_on_machine(ctx, state.machine_id, "systemctl", *systemctl_args)
    return exit_code


async def run_status(ctx: Context, args: list[str]) -> int:
    exit_code = 0
    global_units = []
    for index, arg in enumerate(args):
        name = unit_name_mangle(arg)
        try:
            unit = await ctx.api.unit(name)
        except FleetctlError as error:
            ctx.stderr(f"Error retrieving unit: {error}")
            return 1
        if unit is None:
            ctx.stderr(f"Unit {name} does not exist.")
            return 1
        if unit.is_global:
            global_units.append(unit)
            continue
        if unit.current_state == "inactive":
            ctx.stderr(f"Unit {unit.name} does not appear to be loaded.")
            return 1
        if index:
            ctx.stdout("")  # systemctl status separates units with a blank line
        exit_code = await _run_on_machine(ctx, unit.machine_id, "systemctl", "status", "-l", unit.name)
        if exit_code:
            break
    for unit in global_units:
        if await run_on_unit_machines(ctx, unit.name, ["status", unit.name]):
            ctx.stderr(
                f"Error retrieving machine state for global units: systemctl status {unit.name} failed"
            )
            return 1
    return exit_code


async def run_journal(ctx: Context, args: list[str]) -> int:
    if len(args) != 1:
        ctx.stderr("One unit file must be provided.")
        return 1
    name = unit_name_mangle(args[0])
    try:
        unit = await ctx.api.unit(name)
    except FleetctlError as error:
        ctx.stderr(f"Error retrieving unit {name}: {error}")
        return 1
    if unit is None:
        ctx.stderr(f"Unit {name} does not exist.")
        return 1
    if unit.is_global:
        ctx.stderr(f"Unable to retrieve journal of global unit {name}.")
        return 1
    if unit.current_state == "inactive":
        ctx.stderr(f"Unit {name} does not appear to be running.")
        return 1
    command = ["--unit", name, "--no-pager", "-n", str(ctx.flags["lines"]), "--output", ctx.flags["output"]]
    if ctx.flags["follow"]:
        command.append("-f")
    return await _run_on_machine(ctx, unit.machine_id, "journalctl", *command)


# ---- ssh ------------------------------------------------------------------------------------------


async def _machine_by_prefix(ctx: Context, lookup: str) -> MachineInfo:
    matches = [m for m in (await ctx.api.machines()) if m.id.startswith(lookup)]
    if len(matches) > 1:
        raise FleetctlError("found more than one machine")
    if not matches:
        raise FleetctlError("machine does not exist")
    return matches[0]


async def _machine_of_unit(ctx: Context, lookup: str) -> MachineInfo | None:
    unit = await ctx.api.unit(unit_name_mangle(lookup))
    if unit is None:
        raise FleetctlError("unit does not exist")
    if unit.is_global:
        raise FleetctlError("global units unsupported")
    return await ctx.machine(unit.machine_id) if unit.machine_id else None


async def _find_target(ctx: Context, args: list[str]) -> tuple[MachineInfo | None, list[str]]:
    if ctx.flags["machine"]:
        return await _machine_by_prefix(ctx, ctx.flags["machine"]), args
    if ctx.flags["unit"]:
        return await _machine_of_unit(ctx, ctx.flags["unit"]), args
    if not args:
        raise FleetctlError("one machine or unit must be provided")
    lookup = args[0]
    machine = unit_machine = None
    with contextlib.suppress(FleetctlError):
        machine = await _machine_by_prefix(ctx, lookup)
    with contextlib.suppress(FleetctlError):
        unit_machine = await _machine_of_unit(ctx, lookup)
    if machine and unit_machine:
        raise FleetctlError(
            f"ambiguous argument, both machine and unit found for `{lookup}`.\n"
            "Please use flag `-m` or `-u` to refine the search"
        )
    if machine is None and unit_machine is None:
        raise FleetctlError("could not find matching unit or machine")
    return machine or unit_machine, args[1:]


async def run_ssh(ctx: Context, args: list[str]) -> int:
    if ctx.flags["machine"] and ctx.flags["unit"]:
        ctx.stderr("Both machine and unit flags provided, please specify only one.")
        return 1
    try:
        machine, command = await _find_target(ctx, args)
    except FleetctlError as error:
        ctx.stderr(f"Unable to proceed: {error}")
        return 1
    if machine is None:
        ctx.stderr("Could not determine address of machine.")
        return 1
    found = await _machine_root(ctx, machine.id)
    if found is None:
        return 1
    root = found[1]
    env = {**os.environ, "FLOTILLA_SYSTEMD_ROOT": root, "FLEET_MACHINE_ID": machine.id}
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        # An interactive shell: it needs this terminal, so its output is not copied.
        shell = os.environ.get("SHELL", "/bin/sh")
        proc = await asyncio.create_subprocess_exec(shell, env=env, cwd=root)
        return await proc.wait()
    # ssh hands the remote shell the arguments joined by spaces; so does this.
    return await _run_local(ctx, ["/bin/sh", "-c", " ".join(command)], env)

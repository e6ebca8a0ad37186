"""The commands that change units: submit, load, start, stop, unload, destroy, restart — fleetctl's
flow, messages and exit codes (fleetctl/fleetctl.go lazyCreateUnits, tryWaitForUnitStates and friends).

Waiting works as fleetctl's: one *attempt* polls the unit every 0.25 s for up to 2 s; ``--block-attempts``
bounds the attempts (0: no bound) and ``--no-block`` skips the wait. Unlike fleet (#1348), a wait for a
unit the engine cannot place says why — "Unit X cannot be scheduled: <reason>" — each time the reason
changes, and still ends after the attempts run out.
"""

from __future__ import annotations

import asyncio
import logging
import os

from flotilla.fleetctl.context import Context
from flotilla.fleetctl.model import FleetctlError, UnitInfo
from flotilla.fleetctl.names import (
    maybe_append_default_unit_type,
    template_of,
    unit_name_mangle,
    validate_name,
)
from flotilla.fleetctl.output import machine_full_legend
from flotilla.units import FleetOptionsError, UnitError, UnitFile, parse_unit_text_fleet, validate_fleet_unit

__all__ = [
    "run_destroy",
    "run_load",
    "run_restart",
    "run_start",
    "run_stop",
    "run_submit",
    "run_unload",
]

log = logging.getLogger("flotilla.fleetctl")

ATTEMPT_S = 2.0  # fleet's defaultSleepTime: how long one attempt keeps polling
POLL_S = 0.25

# The desired states from which each command may replace a unit (fleet's checkReplaceUnitState).
_REPLACE_FROM = {
    "submit": ("inactive",),
    "load": ("inactive", "loaded"),
    "start": ("inactive", "loaded", "launched"),
}


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"  # Go's %v of a []string


def block_attempts(ctx: Context) -> int:
    """-1: do not wait; 0: wait without bound; N: at most N attempts."""
    if ctx.flags.get("no-block"):
        return -1
    return max(int(ctx.flags.get("block-attempts") or 0), 0)


# ---- creating units from files and templates ------------------------------------------------------


def _read_unit_file(path: str) -> UnitFile:
    with open(path, encoding="utf-8", errors="surrogateescape") as file:
        return parse_unit_text_fleet(file.read(), path=path)


def _local_differs(ctx: Context, path: str, unit: UnitInfo) -> bool:
    """Whether the local file (or, for an instance, its local template) differs from the registry's unit;
    warns as fleetctl does unless --replace. Raises FleetctlError/OSError when neither file can be read."""
    replace = bool(ctx.flags.get("replace"))
    try:
        local = _read_unit_file(path)
        what = "unit file"
    except OSError:
        template = template_of(unit_name_mangle(path))
        if template is None:
            raise FleetctlError(f"error Unit {path} does not seem to be a template unit") from None
        local = _read_unit_file(os.path.join(os.path.dirname(path), template))
        what = "template unit file"
    differs = local != unit.unit_file
    if differs and not replace:
        ctx.stderr(
            f"WARNING: Unit {unit.name} in registry differs from local {what} {path}. "
            "Add --replace to override."
        )
    return differs


async def _unit_file_for(ctx: Context, path: str) -> UnitFile:
    """The options for a unit not yet in the registry: the file on disk, else (for an instance) the
    template from the registry, else the template beside the named path."""
    name = unit_name_mangle(path)
    if os.path.exists(path):
        try:
            return _read_unit_file(path)
        except (OSError, UnitError) as error:
            raise FleetctlError(f"failed getting Unit({path}) from file: {error}") from error
    template = template_of(name)
    if template is None:
        raise FleetctlError(f"unable to find Unit({name}) in Registry or on filesystem")
    try:
        registered = await ctx.api.unit(template)
    except FleetctlError as error:
        raise FleetctlError(
            f"failed getting Unit({path}) from template: error retrieving template Unit({template}) "
            f"from Registry: {error}"
        ) from error
    if registered is not None:
        try:
            _local_differs(ctx, path, registered)
        except (FleetctlError, OSError, UnitError):
            pass  # no local copy to compare with
        return registered.unit_file
    template_path = os.path.join(os.path.dirname(path), template)
    if not os.path.exists(template_path):
        raise FleetctlError(
            f"failed getting Unit({path}) from template: unable to find template Unit({template}) "
            "in Registry or on filesystem"
        )
    try:
        return _read_unit_file(template_path)
    except (OSError, UnitError) as error:
        raise FleetctlError(
            f"failed getting Unit({path}) from template: unable to load template Unit({template}) "
            f"from file: {error}"
        ) from error


async def _create_unit(ctx: Context, name: str, unit_file: UnitFile) -> None:
    problem = validate_name(name)
    if problem:
        raise FleetctlError(problem)
    try:
        options = validate_fleet_unit(unit_file)
    except FleetOptionsError as error:
        raise FleetctlError(str(error)) from error
    for warning in options.warnings:
        log.warning("Unit %s: %s", name, warning)
    try:
        await ctx.api.create_unit(UnitInfo(name, tuple(unit_file.options)))
    except FleetctlError as error:
        raise FleetctlError(f"failed creating unit {name}: {error}") from error


async def _should_create(ctx: Context, command: str, path: str, name: str) -> bool:
    """fleet's checkUnitCreation: create when the registry lacks the unit, or when --replace is given,
    the local file differs and the unit's desired state allows this command to replace it."""
    try:
        unit = await ctx.api.unit(name)
    except FleetctlError as error:
        raise FleetctlError(f"error retrieving Unit({name}) from Registry: {error}") from error
    if unit is None:
        return True
    replace = bool(ctx.flags.get("replace"))
    try:
        differs = _local_differs(ctx, path, unit)
    except (FleetctlError, OSError, UnitError) as error:
        if replace:
            raise FleetctlError(str(error)) from error
        return False
    if not replace:
        return False
    if not differs:
        ctx.stdout(f"Found same Unit({unit.name}) in Registry, nothing to do")
        return False
    if unit.desired_state in _REPLACE_FROM[command]:
        return True
    ctx.stderr(
        f"Warning: can not replace Unit({unit.name}) in state '{unit.desired_state}', "
        "use the appropriate command"
    )
    return False


async def lazy_create_units(ctx: Context, command: str, args: list[str]) -> None:
    """Make sure each named unit is in the registry (fleet's lazyCreateUnits); raises FleetctlError."""
    created = []
    for arg in args:
        path = maybe_append_default_unit_type(arg)
        name = unit_name_mangle(path)
        if not await _should_create(ctx, command, path, name):
            continue
        await _create_unit(ctx, name, await _unit_file_for(ctx, path))
        created.append(name)
    # fleetctl waits for new units with the raw --block-attempts (so --no-block still waits here).
    attempts = max(int(ctx.flags.get("block-attempts") or 0), 0)
    errors = await asyncio.gather(*(_check_unit_state(ctx, n, "inactive", attempts) for n in created))
    failed = [e for e in errors if e]
    for error in failed:
        ctx.stderr(f"Error waiting on unit creation: {error}")
    if failed:
        raise FleetctlError("One or more errors creating units")


async def _set_target_state_of_units(ctx: Context, names: list[str], state: str) -> list[UnitInfo]:
    triggered = []
    for name in names:
        try:
            unit = await ctx.api.unit(name)
        except FleetctlError as error:
            raise FleetctlError(f"error retrieving unit {name} from registry: {error}") from error
        if unit is None:
            raise FleetctlError(f"unable to find unit {name}")
        if unit.desired_state == state:
            log.debug("Unit(%s) already %s, skipping.", name, state)
            continue
        await ctx.api.set_unit_target_state(unit.name, state)
        triggered.append(unit)
    return triggered


# ---- waiting --------------------------------------------------------------------------------------


async def _assert_unit_state(ctx: Context, name: str, state: str) -> bool:
    """One attempt: poll until the unit reports ``state`` (then print where) or the attempt ends."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ATTEMPT_S
    while True:
        try:
            unit = await ctx.api.unit(name)
        except FleetctlError as error:
            log.debug(
                "Retrying assertion of states. err: Error retrieving Unit(%s) from Registry: %s", name, error
            )
            unit = None
        if unit is not None:
            reason = unit.unschedulable_reason
            if reason and ctx.unschedulable_reasons.get(name) != reason:
                ctx.unschedulable_reasons[name] = reason
                ctx.stderr(f"Unit {name} cannot be scheduled: {reason}")
            # A global unit never gets a current state: its desired state is what fleetctl waits for.
            reached = unit.desired_state if unit.is_global else unit.current_state
            if reached == state:
                # fleet prints the current state, empty for a global unit ("Unit g.service "): say the state.
                message = f"Unit {name} {reached}"
                machine = await ctx.machine(unit.machine_id) if unit.machine_id else None
                if machine is not None:
                    message += f" on {machine_full_legend(machine, False)}"
                ctx.stdout(message)
                return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL_S)


async def _check_unit_state(ctx: Context, name: str, state: str, attempts: int) -> str | None:
    attempt = 0
    while attempts < 1 or attempt < attempts:
        attempt += 1
        if await _assert_unit_state(ctx, name, state):
            return None
    reason = ctx.unschedulable_reasons.get(name)
    why = f" (it cannot be scheduled: {reason})" if reason else ""
    return f"timed out waiting for unit {name} to report state {state}{why}"


async def try_wait_for_unit_states(
    ctx: Context, names: list[str], verb: str, state: str, attempts: int
) -> str | None:
    if attempts < 0:
        for name in names:
            ctx.stdout(f"Triggered unit {name} {verb}")
        return None
    errors = await asyncio.gather(*(_check_unit_state(ctx, n, state, attempts) for n in names))
    for error in errors:
        if error:
            ctx.stderr(f"Error waiting for units: {error}")
            return error
    return None


async def _check_active(ctx: Context, name: str, attempts: int) -> str | None:
    """Wait until systemd reports the unit active and loaded. A unit that settles as failed or inactive
    fails after one attempt; one still activating is waited for up to ``attempts`` (0: no bound)."""
    loop = asyncio.get_running_loop()
    attempt = 0
    seen = "no state reported yet"
    while attempts < 1 or attempt < attempts:
        attempt += 1
        deadline = loop.time() + ATTEMPT_S
        while True:
            try:
                states = await ctx.api.unit_states(name)
            except FleetctlError as error:
                states, seen = [], f"Error getting unit state of {name}: {error}"
            if any(s.active_state == "active" and s.load_state == "loaded" for s in states):
                return None
            if states:
                seen = ", ".join(f"{s.load_state}/{s.active_state}/{s.sub_state}" for s in states)
            if loop.time() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        if states and all(s.active_state in ("failed", "inactive") for s in states):
            break
    return f"Failed to find an active unit {name} within {ATTEMPT_S:g}s, err: systemd reports {seen}"


# ---- the commands ---------------------------------------------------------------------------------


async def run_submit(ctx: Context, args: list[str]) -> int:
    if not args:
        ctx.stderr("No units given")
        return 0
    try:
        await lazy_create_units(ctx, "submit", args)
    except FleetctlError as error:
        ctx.stderr(f"Error creating units: {error}")
        return 1
    return 0


async def _create_and_trigger(ctx: Context, command: str, args: list[str], state: str) -> list[str] | None:
    """Create what is missing, set the desired state, announce global units; the units to wait for."""
    try:
        await lazy_create_units(ctx, command, args)
    except FleetctlError as error:
        ctx.stderr(f"Error creating units: {error}")
        return None
    try:
        triggered = await _set_target_state_of_units(ctx, [unit_name_mangle(a) for a in args], state)
    except FleetctlError as error:
        ctx.stderr(f"Error {'starting' if command == 'start' else 'loading'} units: {error}")
        return None
    waiting = []
    for unit in triggered:
        if unit.is_global:
            ctx.stdout(f"Triggered global unit {unit.name} {command}")
        else:
            waiting.append(unit.name)
    return waiting


async def run_load(ctx: Context, args: list[str]) -> int:
    if not args:
        ctx.stderr("No units given")
        return 0
    loading = await _create_and_trigger(ctx, "load", args, "loaded")
    if loading is None:
        return 1
    error = await try_wait_for_unit_states(ctx, loading, "load", "loaded", block_attempts(ctx))
    if error:
        ctx.stderr(f"Error waiting for unit states, exit status: {error}")
        return 1
    return 0


async def run_start(ctx: Context, args: list[str]) -> int:
    if not args:
        ctx.stderr("No units given")
        return 0
    starting = await _create_and_trigger(ctx, "start", args, "launched")
    if starting is None:
        return 1
    attempts = block_attempts(ctx)
    error = await try_wait_for_unit_states(ctx, starting, "start", "launched", attempts)
    if error:
        ctx.stderr(f"Error waiting for unit states, exit status: {error}")
        return 1
    if attempts >= 0:
        errors = await asyncio.gather(*(_check_active(ctx, n, attempts) for n in starting))
        error = next((e for e in errors if e), None)
        if error:
            ctx.stderr(f"Error waiting for units: {error}")
            ctx.stderr(f"Error waiting for systemd unit states, err: {error}")
            return 1
    return 0


async def find_units(ctx: Context, args: list[str]) -> list[UnitInfo]:
    """The registry's units named by ``args``, in argument order; unknown names are left out."""
    by_name = {u.name: u for u in await ctx.api.units()}
    return [by_name[n] for n in (unit_name_mangle(a) for a in args) if n in by_name]


async def _found_units(ctx: Context, args: list[str]) -> list[UnitInfo] | int:
    if not args:
        ctx.stderr("No units given")
        return 0
    try:
        units = await find_units(ctx, args)
    except FleetctlError as error:
        ctx.stderr(str(error))
        return 1
    if not units:
        ctx.stderr("Units not found in registry")
        return 0
    return units


async def run_stop(ctx: Context, args: list[str]) -> int:
    units = await _found_units(ctx, args)
    if isinstance(units, int):
        return units
    stopping = []
    for unit in units:
        if not unit.is_global:
            if unit.current_state == "inactive":
                ctx.stderr(f"Unable to stop unit {unit.name} in state inactive")
                return 1
            if unit.current_state == "loaded":
                log.debug("Unit(%s) already loaded, skipping.", unit.name)
                continue
        await ctx.api.set_unit_target_state(unit.name, "loaded")
        if unit.is_global:
            ctx.stdout(f"Triggered global unit {unit.name} stop")
        else:
            stopping.append(unit.name)
    error = await try_wait_for_unit_states(ctx, stopping, "stop", "loaded", block_attempts(ctx))
    if error:
        ctx.stderr(f"Failed to stop units {_go_list(stopping)}. err: {error}")
        return 1
    ctx.stderr(f"Successfully stopped units {_go_list(stopping)}.")
    return 0


async def run_unload(ctx: Context, args: list[str]) -> int:
    units = await _found_units(ctx, args)
    if isinstance(units, int):
        return units
    waiting = []
    for unit in units:
        if not unit.is_global and unit.current_state == "inactive":
            log.debug("Target state of Unit(%s) already inactive, skipping.", unit.name)
            continue
        await ctx.api.set_unit_target_state(unit.name, "inactive")
        if unit.is_global:
            ctx.stdout(f"Triggered global unit {unit.name} unload")
        else:
            waiting.append(unit.name)
    error = await try_wait_for_unit_states(ctx, waiting, "unload", "inactive", block_attempts(ctx))
    if error:
        ctx.stderr(f"Failed to unload units {_go_list(waiting)}. err: {error}")
        return 1
    ctx.stderr(f"Successfully unloaded units {_go_list(waiting)}.")
    return 0


async def run_destroy(ctx: Context, args: list[str]) -> int:
    units = await _found_units(ctx, args)
    if isinstance(units, int):
        return units
    exit_code = 0
    attempts = block_attempts(ctx)
    for unit in units:
        try:
            if not await ctx.api.destroy_unit(unit.name):
                continue  # destroyed meanwhile: fleetctl ignores "unit does not exist"
            # fleet waits (inverted, only with --no-block) for the unit to vanish; we wait unless told not to.
            attempt = 0
            while attempts >= 0 and (attempts == 0 or attempt < attempts):
                attempt += 1
                if await ctx.api.unit(unit.name) is None:
                    break
                await asyncio.sleep(POLL_S)
        except FleetctlError as error:
            ctx.stderr(f"Error destroying units: {error}")
            exit_code = 1
            continue
        ctx.stdout(f"Destroyed {unit.name}")
    return exit_code


async def _set_state_and_wait(ctx: Context, unit: UnitInfo, state: str, attempts: int) -> int:
    try:
        await ctx.api.set_unit_target_state(unit.name, state)
    except FleetctlError as error:
        ctx.stderr(f"Error setting target state for unit {unit.name}: {error}")
        return 1
    error = await try_wait_for_unit_states(ctx, [unit.name], "restart", state, attempts)
    if error:
        ctx.stderr(f"Error waiting for unit states, exit status: {error}")
        return 1
    return 0


async def run_restart(ctx: Context, args: list[str]) -> int:
    from flotilla.fleetctl.cmd_remote import run_on_unit_machines

    units = await _found_units(ctx, args)
    if isinstance(units, int):
        return units
    attempts = block_attempts(ctx)
    global_units = []
    for unit in units:
        if unit.is_global:
            global_units.append(unit)
        elif unit.current_state == "inactive":
            ctx.stderr(f"Unable to restart unit {unit.name} in state inactive")
        elif unit.current_state == "loaded":
            log.info("Unit(%s) already loaded, starting.", unit.name)
            if await _set_state_and_wait(ctx, unit, "launched", attempts):
                return 1
        else:
            # fleet waits for "launched" after the stop too, which passes at once; wait for the stop.
            if await _set_state_and_wait(ctx, unit, "loaded", attempts):
                return 1
            if await _set_state_and_wait(ctx, unit, "launched", attempts):
                return 1
            log.info("Unit(%s) was restarted.", unit.name)
    for unit in global_units:
        if await run_on_unit_machines(ctx, unit.name, ["restart", unit.name]):
            names = _go_list([u.name for u in global_units])
            ctx.stderr(
                f"Error restarting global units {names} "
                f"err:Error running systemctl restart, unit name={unit.name}"
            )
            return 1
    return 0

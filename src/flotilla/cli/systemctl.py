"""``flotilla systemctl --root DIR VERB ...``: systemctl's verbs, output and exit codes, for the embedded
unit manager of one root directory.

Exit codes follow systemctl (and LSB for status): 0 success, 1 failure, 3 unit not active, 4 no such unit
(status), 5 unit not found/loaded (start, stop).
"""

from __future__ import annotations

import asyncio
import fnmatch
import signal as signals
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from flotilla.systemd import JournalReader, ManagerClient, SystemdError, UnitStatus, format_entry
from flotilla.systemd.loader import normalize_unit_name

__all__ = ["command"]

T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_NOT_ACTIVE = 3
EXIT_NO_SUCH_UNIT = 4
EXIT_NOT_FOUND = 5


def _run(root: str, work: Callable[[ManagerClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with ManagerClient(root) as client:
            return await work(client)

    try:
        return asyncio.run(go())
    except SystemdError as error:
        click.echo(f"Failed to connect to the unit manager: {error}", err=True)
        sys.exit(EXIT_FAILURE)


@click.group(name="systemctl")
@click.option(
    "--root",
    envvar="FLOTILLA_SYSTEMD_ROOT",
    required=True,
    type=click.Path(file_okay=False),
    help="The root directory of the unit manager (as given to `flotilla systemd --root`).",
)
@click.pass_context
def command(ctx: click.Context, root: str) -> None:
    """Control the embedded unit manager like systemctl controls systemd."""
    ctx.obj = root


def _names(units: tuple[str, ...]) -> list[str]:
    return [normalize_unit_name(u) for u in units]


def _job_command(verb: str) -> click.Command:
    @click.command(name=verb, help=f"{verb.capitalize()} (activate/deactivate) one or more units.")
    @click.argument("units", nargs=-1, required=True)
    @click.option("--no-block", is_flag=True, help="Do not wait for the job to finish.")
    @click.pass_obj
    def job(root: str, units: tuple[str, ...], no_block: bool) -> None:
        async def work(client: ManagerClient) -> list[Any]:
            method = getattr(client, f"{verb}_unit")
            return list(await asyncio.gather(*(method(n, no_block=no_block) for n in _names(units))))

        exit_code = 0
        for result in _run(root, work):
            if result.result in ("done", "queued"):
                continue
            if result.result == "invalid":
                click.echo(f"Failed to {verb} {result.unit}: {result.message}", err=True)
                exit_code = max(exit_code, EXIT_NOT_FOUND)
            else:
                click.echo(result.message or f"Job for {result.unit} failed.", err=True)
                exit_code = max(exit_code, EXIT_FAILURE)
        sys.exit(exit_code)

    return job


for _verb in ("start", "stop", "restart"):
    command.add_command(_job_command(_verb))


@command.command(name="status")
@click.argument("units", nargs=-1)
@click.option("-n", "--lines", default=10, show_default=True, help="Journal lines to show.")
@click.option("-l", "--full", is_flag=True, help="Do not ellipsize.")
@click.option("--no-pager", is_flag=True, help="Accepted for compatibility; there is no pager.")
@click.pass_obj
def status(root: str, units: tuple[str, ...], lines: int, full: bool, no_pager: bool) -> None:
    """Show runtime status of units, with their latest journal lines."""

    async def work(client: ManagerClient) -> list[UnitStatus]:
        if not units:
            return await client.list_units()
        return [await client.unit_status(n) for n in _names(units)]

    statuses = _run(root, work)
    exit_code = 0
    reader = JournalReader(_journal_dir(root))
    for index, unit in enumerate(statuses):
        if index:
            click.echo()
        if unit.load_state == "not-found" and unit.active_state == "inactive":
            click.echo(f"Unit {unit.name} could not be found.", err=True)
            exit_code = max(exit_code, EXIT_NO_SUCH_UNIT)
            continue
        click.echo(_status_text(unit, root))
        if lines > 0:
            entries = reader.tail(lines, units=[unit.name])
            if entries:
                click.echo()
                for entry in entries:
                    click.echo(format_entry(entry, "short"), nl=False)
        if unit.active_state not in ("active", "reloading"):
            exit_code = max(exit_code, EXIT_NOT_ACTIVE)
    sys.exit(exit_code)


def _journal_dir(root: str) -> str:
    from flotilla.systemd import Layout

    return str(Layout.at(root).journal_dir)


def _timestamp(us: int) -> str:
    if not us:
        return ""
    seconds = us / 1e6
    stamp = time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(seconds))
    return f"{stamp}; {_ago(time.time() - seconds)} ago"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 60:
        return f"{int(seconds)}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}min {secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}min"


def _status_text(unit: UnitStatus, root: str) -> str:
    lines = [f"● {unit.name} - {unit.description or unit.name}"]
    if unit.load_state == "loaded":
        where = unit.fragment_path or "builtin"
        lines.append(f"   Loaded: loaded ({where}; {unit.unit_file_state or 'static'})")
    else:
        reason = f"\n           Reason: {unit.load_error}" if unit.load_error else ""
        lines.append(f"   Loaded: {unit.load_state} ({unit.fragment_path or unit.name}){reason}")
    if unit.dropin_paths:
        lines.append("  Drop-In: " + "\n           ".join(unit.dropin_paths))
    lines.append(f"   Active: {_active_text(unit)}")
    if unit.main_pid:
        lines.append(f" Main PID: {unit.main_pid} ({_comm(unit.main_pid)})")
    elif unit.exec_main_pid and unit.exec_main_code:
        detail = (
            f"status={unit.exec_main_status}"
            if unit.exec_main_code == "exited"
            else (f"signal={_signal_name(unit.exec_main_status)}")
        )
        lines.append(f" Main PID: {unit.exec_main_pid} (code={unit.exec_main_code}, {detail})")
    if unit.status_text:
        lines.append(f'   Status: "{unit.status_text}"')
    if unit.tasks:
        lines.append(f"    Tasks: {len(unit.tasks)}")
        lines.append(f"   CGroup: {unit.cgroup}")
        for i, pid in enumerate(unit.tasks):
            branch = "└─" if i == len(unit.tasks) - 1 else "├─"
            lines.append(f"           {branch}{pid} {_cmdline(pid)}")
    return "\n".join(lines)


def _active_text(unit: UnitStatus) -> str:
    # systemctl omits the sub-state when it repeats the state ("failed", a target's "active")
    text = (
        unit.active_state
        if unit.sub_state == unit.active_state
        else f"{unit.active_state} ({unit.sub_state})"
    )
    if unit.result != "success" and unit.active_state in ("failed", "activating"):
        text += f" (Result: {unit.result})"
    stamp = {
        "active": unit.active_enter_us,
        "reloading": unit.active_enter_us,
        "activating": unit.inactive_exit_us or unit.state_change_us,
        "deactivating": unit.active_exit_us or unit.state_change_us,
    }.get(unit.active_state, unit.inactive_enter_us)
    if stamp:
        text += f" since {_timestamp(stamp)}"
    return text


def _signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


_LEGEND = """
LOAD   = Reflects whether the unit definition was properly loaded.
ACTIVE = The high-level unit activation state, i.e. generalization of SUB.
SUB    = The low-level unit activation state, values depend on unit type.
"""


@command.command(name="list-units")
@click.argument("patterns", nargs=-1)
@click.option("-a", "--all", "show_all", is_flag=True, help="Show inactive units too.")
@click.option("-t", "--type", "unit_type", default=None, help="Only units of this type (service, target).")
@click.option("--state", default=None, help="Only units in this LOAD, ACTIVE or SUB state (comma list).")
@click.option("--no-legend", is_flag=True, help="Print neither header nor footer.")
@click.option("--no-pager", is_flag=True, help="Accepted for compatibility; there is no pager.")
@click.option("-l", "--full", is_flag=True, help="Do not ellipsize.")
@click.pass_obj
def list_units(
    root: str,
    patterns: tuple[str, ...],
    show_all: bool,
    unit_type: str | None,
    state: str | None,
    no_legend: bool,
    no_pager: bool,
    full: bool,
) -> None:
    """List the units the manager has loaded (active or failed ones unless --all)."""
    units = _run(root, lambda c: c.list_units(include_inactive=show_all or bool(state)))
    states = set(state.split(",")) if state else None
    rows = [
        u
        for u in units
        if (not patterns or any(fnmatch.fnmatchcase(u.name, p) for p in patterns))
        and (unit_type is None or u.unit_type == unit_type)
        and (states is None or states & {u.load_state, u.active_state, u.sub_state})
    ]
    table = [("UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION")] + [
        (u.name, u.load_state, u.active_state, u.sub_state, u.description) for u in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for index, row in enumerate(table):
        if index == 0 and no_legend:
            continue
        mark = "●" if index and rows[index - 1].active_state == "failed" else " "
        cells = " ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4]))
        click.echo(f"{mark} {cells} {row[4]}".rstrip() if index else f"  {cells} {row[4]}")
    if not no_legend:
        click.echo(_LEGEND, nl=False)
        hint = "" if show_all else " Pass --all to see loaded but inactive units, too."
        click.echo(f"\n{len(rows)} loaded units listed.{hint}")
        click.echo("To show all installed unit files use 'systemctl list-unit-files'.")


@command.command(name="list-unit-files")
@click.option("--no-legend", is_flag=True)
@click.option("--no-pager", is_flag=True)
@click.pass_obj
def list_unit_files(root: str, no_legend: bool, no_pager: bool) -> None:
    """List installed unit files and their enablement state."""
    files = _run(root, lambda c: c.unit_files())
    width = max([len("UNIT FILE")] + [len(n) for n, _ in files])
    if not no_legend:
        click.echo(f"{'UNIT FILE'.ljust(width)} STATE")
    for name, state in files:
        click.echo(f"{name.ljust(width)} {state}")
    if not no_legend:
        click.echo(f"\n{len(files)} unit files listed.")


@command.command(name="cat")
@click.argument("units", nargs=-1, required=True)
@click.pass_obj
def cat(root: str, units: tuple[str, ...]) -> None:
    """Show the unit files (and drop-ins) of units."""

    async def work(client: ManagerClient) -> list[tuple[str, str | None]]:
        texts: list[tuple[str, str | None]] = []
        for name in _names(units):
            try:
                texts.append((name, await client.unit_file_text(name)))
            except SystemdError:
                texts.append((name, None))
        return texts

    exit_code = 0
    for index, (name, text) in enumerate(_run(root, work)):
        if text is None:
            click.echo(f"No files found for {name}.", err=True)
            exit_code = EXIT_FAILURE
            continue
        click.echo(("\n" if index else "") + text, nl=False)
    sys.exit(exit_code)


@command.command(name="is-active")
@click.argument("units", nargs=-1, required=True)
@click.option("-q", "--quiet", is_flag=True)
@click.pass_obj
def is_active(root: str, units: tuple[str, ...], quiet: bool) -> None:
    """Print each unit's ACTIVE state; exit 0 only if one is active (as systemctl)."""
    statuses = _run(root, lambda c: asyncio.gather(*(c.unit_status(n) for n in _names(units))))
    for unit in statuses:
        if not quiet:
            click.echo(unit.active_state if unit.load_state != "not-found" else "inactive")
    sys.exit(0 if any(u.active_state in ("active", "reloading") for u in statuses) else EXIT_NOT_ACTIVE)


@command.command(name="is-failed")
@click.argument("units", nargs=-1, required=True)
@click.option("-q", "--quiet", is_flag=True)
@click.pass_obj
def is_failed(root: str, units: tuple[str, ...], quiet: bool) -> None:
    """Print each unit's ACTIVE state; exit 0 if one is failed."""
    statuses = _run(root, lambda c: asyncio.gather(*(c.unit_status(n) for n in _names(units))))
    for unit in statuses:
        if not quiet:
            click.echo(unit.active_state)
    sys.exit(0 if any(u.active_state == "failed" for u in statuses) else EXIT_FAILURE)


_PROPERTIES = (
    ("Id", "name"),
    ("Description", "description"),
    ("LoadState", "load_state"),
    ("ActiveState", "active_state"),
    ("SubState", "sub_state"),
    ("Result", "result"),
    ("MainPID", "main_pid"),
    ("ControlPID", "control_pid"),
    ("ExecMainPID", "exec_main_pid"),
    ("ExecMainCode", "exec_main_code"),
    ("ExecMainStatus", "exec_main_status"),
    ("NRestarts", "n_restarts"),
    ("StatusText", "status_text"),
    ("FragmentPath", "fragment_path"),
    ("UnitFileState", "unit_file_state"),
    ("ControlGroup", "cgroup"),
    ("ActiveEnterTimestampMonotonic", "active_enter_us"),
    ("InactiveEnterTimestampMonotonic", "inactive_enter_us"),
)


@command.command(name="show")
@click.argument("units", nargs=-1, required=True)
@click.option(
    "-p", "--property", "properties", multiple=True, help="Only these properties (repeat or comma)."
)
@click.option("--value", is_flag=True, help="Print values only.")
@click.pass_obj
def show(root: str, units: tuple[str, ...], properties: tuple[str, ...], value: bool) -> None:
    """Show properties of units as KEY=VALUE lines."""
    wanted = {p for group in properties for p in group.split(",")}
    statuses = _run(root, lambda c: asyncio.gather(*(c.unit_status(n) for n in _names(units))))
    for index, unit in enumerate(statuses):
        if index:
            click.echo()
        data = unit.to_json()
        for key, field in _PROPERTIES:
            if wanted and key not in wanted:
                continue
            text = data[field]
            if key == "ExecMainCode":
                text = {"exited": 1, "killed": 2, "dumped": 3}.get(text, 0)
            click.echo(f"{text}" if value else f"{key}={text}")


@command.command(name="daemon-reload")
@click.pass_obj
def daemon_reload(root: str) -> None:
    """Reload unit files."""
    _run(root, lambda c: c.daemon_reload())


@command.command(name="reset-failed")
@click.argument("units", nargs=-1)
@click.pass_obj
def reset_failed(root: str, units: tuple[str, ...]) -> None:
    """Reset the failed state of units (all when none are named)."""

    async def work(client: ManagerClient) -> None:
        if not units:
            await client.reset_failed(None)
        for name in _names(units):
            await client.reset_failed(name)

    _run(root, work)


@command.command(name="kill")
@click.argument("units", nargs=-1, required=True)
@click.option("-s", "--signal", "signal_name", default="SIGTERM", show_default=True)
@click.pass_obj
def kill(root: str, units: tuple[str, ...], signal_name: str) -> None:
    """Send a signal to every process of units."""
    try:
        number = (
            int(signal_name)
            if signal_name.isdigit()
            else signals.Signals[signal_name if signal_name.startswith("SIG") else f"SIG{signal_name}"].value
        )
    except KeyError:
        raise click.BadParameter(f"unknown signal {signal_name}", param_hint="--signal") from None

    async def work(client: ManagerClient) -> None:
        for name in _names(units):
            await client.kill_unit(name, number)

    _run(root, work)


def _enablement(verb: str) -> click.Command:
    @click.command(name=verb, help=f"{verb.capitalize()} units (symlinks from their [Install] targets).")
    @click.argument("units", nargs=-1, required=True)
    @click.option("--runtime", is_flag=True, help="Only until the next reboot (under ROOT/run).")
    @click.option("--now", is_flag=True, help="Also start (enable) or stop (disable) the units.")
    @click.pass_obj
    def change(root: str, units: tuple[str, ...], runtime: bool, now: bool) -> None:
        async def work(client: ManagerClient) -> list[str]:
            changes: list[str] = []
            for name in _names(units):
                if verb == "enable":
                    changes += await client.enable_unit(name, runtime=runtime)
                    if now:
                        await client.start_unit(name)
                else:
                    changes += await client.disable_unit(name)
                    if now:
                        await client.stop_unit(name)
            return changes

        for line in _run(root, work):
            click.echo(line, err=True)

    return change


command.add_command(_enablement("enable"))
command.add_command(_enablement("disable"))


@command.command(name="link")
@click.argument("paths", nargs=-1, required=True)
@click.option("--runtime", is_flag=True, help="Link under ROOT/run (gone at the next boot).")
@click.pass_obj
def link(root: str, paths: tuple[str, ...], runtime: bool) -> None:
    """Make unit files outside the search path available."""

    async def work(client: ManagerClient) -> None:
        for path in paths:
            await client.link_unit_file(path, runtime=runtime)

    _run(root, work)

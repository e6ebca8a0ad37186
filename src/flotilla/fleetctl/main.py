"""``fleetctl``: fleet's command-line client — its commands, flags, messages, output and exit codes.

Exit codes: 0 on success, 1 when a command fails (fleetctl's), 2 for a command line that cannot be
read and for the deprecated ``verify``/``--sign``. Run as ``fleetctl`` or ``python -m flotilla.fleetctl``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from flotilla import __version__
from flotilla.fleetctl import cmd_info, cmd_remote, cmd_units
from flotilla.fleetctl.context import Context, make_api
from flotilla.fleetctl.flags import GLOBAL_FLAGS, FlagSpec, UsageError, parse_command_line
from flotilla.fleetctl.model import FleetctlError
from flotilla.fleetctl.output import tabwrite

__all__ = ["COMMANDS", "main", "run"]

DESCRIPTION = "fleetctl is a command-line interface to fleet, the cluster-wide CoreOS init system."
_SIGN_WARNING = "WARNING: The signed/verified units feature is DEPRECATED and cannot be used."


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    run: Callable[[Context, list[str]], Awaitable[int]] | None
    flags: Mapping[str, FlagSpec] = field(default_factory=dict)
    description: str = ""


def _flag(kind: type, default, help: str) -> FlagSpec:
    return FlagSpec(kind, default, help)


_FULL = {
    "full": _flag(bool, False, "Do not ellipsize fields on output"),
    "l": FlagSpec(bool, alias_of="full"),
}
_LEGEND = {"no-legend": _flag(bool, False, "Do not print a legend (column headers)")}


def _fields(default: str, known: Sequence[str]) -> dict[str, FlagSpec]:
    return {"fields": _flag(str, default, f'Columns to print. Valid fields are "{",".join(sorted(known))}"')}


def _block(verb: str) -> dict[str, FlagSpec]:
    return {
        "block-attempts": _flag(
            int,
            0,
            f"Wait until the units are {verb}, up to N attempts of 2s (0: no limit); not for global units",
        ),
        "no-block": _flag(bool, False, f"Do not wait until the units are {verb} before exiting"),
    }


_SIGN = {"sign": _flag(bool, False, "DEPRECATED - this option cannot be used")}
_REPLACE = {"replace": _flag(bool, False, "Replace units already in the cluster with the local versions")}
_SSH_PORT = {"ssh-port": _flag(int, 22, "Accepted for compatibility; Flotilla has no SSH")}

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in [
        Command("cat", "cat UNIT", "Output the contents of a submitted unit", cmd_info.run_cat,
                description="Prints the unit file as it is stored in the cluster."),
        Command("destroy", "destroy UNIT...", "Destroy one or more units in the cluster",
                cmd_units.run_destroy, _block("destroyed"),
                "Removes units from the cluster entirely; they must be submitted again."),
        Command("help", "help [COMMAND]", "Help about any command", None),
        Command("journal", "journal [--lines=N] [-f|--follow] [--output=STRING] UNIT",
                "Print the journal of a unit in the cluster to stdout", cmd_remote.run_journal,
                {"lines": _flag(int, 10, "Number of recent log lines to return"),
                 "follow": _flag(bool, False, "Keep printing new entries as they are appended"),
                 "f": FlagSpec(bool, alias_of="follow"),
                 "output": _flag(str, "short", "Output mode, passed to journalctl unaltered"),
                 "sudo": _flag(bool, False, "Accepted for compatibility; the journal is read locally"),
                 **_SSH_PORT},
                "Runs `flotilla journalctl` against the unit manager of the unit's machine (its\n"
                "flotilla_systemd_root metadata). Does not work with global units."),
        Command("list-machines", "list-machines [-l|--full] [--no-legend] [--fields]",
                "Enumerate the current hosts in the cluster", cmd_info.run_list_machines,
                {**_FULL, **_LEGEND, **_fields("machine,ip,metadata", ["machine", "ip", "metadata"])},
                "Lists the machines that are members of the cluster now."),
        Command("list-unit-files", "list-unit-files [--full] [--no-legend] [--fields]",
                "List the units that exist in the cluster.", cmd_info.run_list_unit_files,
                {**_FULL, **_LEGEND, **_fields("unit,hash,dstate,state,target",
                 ["unit", "hash", "dstate", "state", "target", "tmachine", "global", "desc"])},
                "Lists every unit in the cluster, loaded onto a machine or not."),
        Command("list-units", "list-units [--no-legend] [-l|--full] [--fields]",
                "List the current state of units in the cluster", cmd_info.run_list_units,
                {**_FULL, **_LEGEND, **_fields("unit,machine,active,sub",
                 ["unit", "machine", "active", "sub", "load", "hash"])},
                "Lists the systemd state of every unit loaded onto a machine."),
        Command("load", "load [--no-block|--block-attempts=N] UNIT...",
                "Schedule one or more units in the cluster, first submitting them if necessary.",
                cmd_units.run_load, {**_block("loaded"), **_SIGN, **_REPLACE}),
        Command("restart", "restart [--block-attempts=N] UNIT...",
                "Instruct systemd to rolling restart one or more units in the cluster.",
                cmd_units.run_restart,
                {"block-attempts": _block("restarted")["block-attempts"]}),
        Command("ssh", "ssh [--machine|--unit] {MACHINE|UNIT} [COMMAND...]",
                "Run a command on a machine in the cluster (locally; Flotilla has no SSH)",
                cmd_remote.run_ssh,
                {"machine": _flag(str, "", "Run on this machine (an ID or its prefix)"),
                 "unit": _flag(str, "", "Run on the machine of this unit"),
                 "forward-agent": _flag(bool, False, "Accepted for compatibility; there is no SSH agent"),
                 "A": FlagSpec(bool, alias_of="forward-agent"), **_SSH_PORT},
                "There is no SSH in Flotilla: the command runs on this host, with FLOTILLA_SYSTEMD_ROOT\n"
                "set to the machine's unit manager root (its flotilla_systemd_root metadata), so\n"
                "`flotilla systemctl` and `flotilla journalctl` there act on that machine. Without a\n"
                "command it opens a local shell in that root. Does not work with global units."),
        Command("start", "start [--no-block|--block-attempts=N] UNIT...",
                "Instruct systemd to start one or more units in the cluster, first submitting and loading "
                "if necessary.", cmd_units.run_start, {**_block("launched"), **_SIGN, **_REPLACE},
                "Starts units, submitting local unit files (or instances of templates) first. Waits until\n"
                "each unit is launched and active; a unit that cannot be scheduled is reported with the\n"
                "engine's reason while waiting."),
        Command("status", "status UNIT...", "Output the status of one or more units in the cluster",
                cmd_remote.run_status, dict(_SSH_PORT),
                "Runs `flotilla systemctl status -l` against the unit manager of each unit's machine."),
        Command("stop", "stop [--no-block|--block-attempts=N] UNIT...",
                "Instruct systemd to stop one or more units in the cluster.", cmd_units.run_stop,
                _block("stopped")),
        Command("submit", "submit UNIT...", "Upload one or more units to the cluster without starting them",
                cmd_units.run_submit, {**_SIGN, **_REPLACE}),
        Command("unload", "unload UNIT...", "Unschedule one or more units in the cluster.",
                cmd_units.run_unload, _block("inactive")),
        Command("verify", "verify UNIT", "DEPRECATED - No longer works", None),
        Command("version", "version", "Print the version and exit", None),
    ]
}  # fmt: skip


def _flag_lines(flags: Mapping[str, FlagSpec]) -> list[str]:
    lines = []
    for name, spec in sorted(flags.items()):
        if spec.alias_of:
            lines.append(f"\t-{name}\tShorthand for --{spec.alias_of}")
            continue
        default = "" if spec.kind is bool or spec.default in ("", None) else f"={spec.default}"
        lines.append(f"\t--{name}{default}\t{spec.help}")
    return lines


def help_text(command: Command | None) -> str:
    lines = ["NAME:"]
    if command is None:
        usage = "\tfleetctl [global options] <command> [command options] [arguments...]"
        lines += [f"\tfleetctl - {DESCRIPTION}", "", "USAGE:", usage, "", "VERSION:", f"\t{__version__}", ""]
        lines.append("COMMANDS:")
        lines += [f"\t{c.name}\t{c.summary}" for c in COMMANDS.values() if c.name != "verify"]
    else:
        lines += [f"\t{command.name} - {command.summary}", "", "USAGE:", f"\tfleetctl {command.usage}"]
        if command.description:
            lines += ["", "DESCRIPTION:", *(f"\t{line}" for line in command.description.split("\n"))]
        if command.flags:
            lines += ["", "OPTIONS:", *_flag_lines(command.flags)]
    lines += ["", "GLOBAL OPTIONS:", *_flag_lines(GLOBAL_FLAGS), ""]
    return tabwrite("\n".join(lines) + "\n")


def _logging(err: TextIO, debug: bool) -> logging.Handler:
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s fleetctl: %(message)s"))
    logger = logging.getLogger("flotilla.fleetctl")
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.addHandler(handler)
    logger.propagate = False
    return handler


async def _run_command(command: Command, ctx: Context, args: list[str]) -> int:
    try:
        return await command.run(ctx, args)
    finally:
        await ctx.api.close()


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run fleetctl with ``argv`` (without the program name); returns the exit code."""
    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        inv = parse_command_line(
            argv, env, {name: c.flags for name, c in COMMANDS.items()}, stop_after_first_arg=("ssh",)
        )
    except UsageError as error:
        print(f"Error: {error}\nRun 'fleetctl help' for usage.", file=err)
        return 2
    command = COMMANDS.get(inv.command) if inv.command else None
    if inv.global_flags["version"] or command is COMMANDS["version"] or (argv and argv[0] == "-v"):
        print(f"fleetctl version {__version__}", file=out)
        return 0
    if command is None or inv.global_flags["help"] or command.name == "help":
        topic = (
            COMMANDS.get(inv.args[0]) if command is not None and command.name == "help" and inv.args else None
        )
        out.write(help_text(topic if command is None or command.name == "help" else command))
        return 0
    if command.name == "verify" or inv.flags.get("sign"):
        print(_SIGN_WARNING, file=err)
        return 2
    handler = _logging(err, bool(inv.global_flags["debug"]))
    try:
        try:
            api = make_api(inv.global_flags, inv.explicit)
        except FleetctlError as error:
            print(f"Unable to initialize client: {error}", file=err)
            return 1
        ctx = Context(api, inv.flags, inv.global_flags, out, err)
        try:
            return asyncio.run(_run_command(command, ctx, inv.args))
        except KeyboardInterrupt:
            return 130
    finally:
        logging.getLogger("flotilla.fleetctl").removeHandler(handler)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point (``fleetctl = flotilla.fleetctl.main:main``)."""
    # SIGTERM ends fleetctl as Ctrl-C does, so a `journal -f` stops the journalctl it runs.
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()

"""``ETCDCTL_API=2 etcdctl``: global flags, then a verb (or a group and its verb), run the way
urfave/cli 1.22 runs etcdctl 3.4's ctlv2 app — usage errors print the help on stdout and the error on
stderr and exit 1, unknown verbs exit 3 — with the verbs' own exit codes otherwise."""

from __future__ import annotations

import sys

from flotilla.etcdctl.v2.commands import (
    APP_NAME,
    COMMANDS,
    GLOBAL_FLAGS,
    HELP_FLAG,
    VERSION,
    VERSION_FLAG,
    Command,
    app_help,
    command_help,
    find,
    group_app_help,
    subcommand_help,
)
from flotilla.etcdctl.v2.context import Context
from flotilla.etcdctl.v2.flags import FlagError, parse, reorder

__all__ = ["main"]


def main(argv: list[str]) -> None:
    """Run etcdctl's v2 verbs on ``argv`` (without the program name); always exits via SystemExit."""
    try:
        _run(list(argv))
    except BrokenPipeError:
        raise SystemExit(1) from None
    finally:
        sys.stdout.flush()
    raise SystemExit(0)


def _usage_error(help_text: str, error: FlagError, separator: str) -> None:
    # The app and groups say "Incorrect Usage. <err>", a verb "Incorrect Usage: <err>"; all then exit 1
    # with the error on stderr (ctlv2's Start prints what app.Run returned).
    if separator == "." and str(error).startswith("Cannot use two forms"):
        sys.stdout.write(f"{error}\n{help_text}")
    else:
        sys.stdout.write(f"Incorrect Usage{separator} {error}\n\n{help_text}")
    sys.stdout.flush()
    print(error, file=sys.stderr)
    raise SystemExit(1)


def _no_topic(name: str) -> None:
    sys.stdout.flush()
    print(f"No help topic for '{name}'", file=sys.stderr)
    raise SystemExit(3)


def _run(argv: list[str]) -> None:
    try:
        options, args = parse([*GLOBAL_FLAGS, HELP_FLAG, VERSION_FLAG], argv)
    except FlagError as exc:
        _usage_error(app_help(), exc, ".")
    if options["help"]:
        sys.stdout.write(app_help())
        return
    if options["version"]:
        sys.stdout.write(f"{APP_NAME} version: {VERSION}\nAPI version: 2\n")
        return
    command = _topic(args)
    if command is None:
        return
    if command.name == "help":
        _help(args[1:])
        return
    if command.subcommands:
        _run_group(command, options, args[1:])
        return
    _run_command(command, f"{APP_NAME} {command.name}", options, args[1:])


def _help(args: list[str]) -> None:
    command = _topic(args)
    if command is not None:
        sys.stdout.write(command_help(command, f"{APP_NAME} {command.name}"))


def _topic(args: list[str]) -> Command | None:
    """The command ``args[0]`` names; without one the app's help is printed and None returned; an unknown
    one is urfave's "No help topic" error."""
    if not args:
        sys.stdout.write(app_help())
        return None
    command = find(COMMANDS, args[0])
    if command is None:
        _no_topic(args[0])
    return command


def _run_group(group: Command, options: dict, args: list[str]) -> None:
    help_name = f"{APP_NAME} {group.name}"
    try:
        flags, rest = parse([HELP_FLAG], args)
    except FlagError as exc:
        _usage_error(subcommand_help(group, help_name), exc, ".")
    if flags["help"] or not rest:
        sys.stdout.write(subcommand_help(group, help_name))
        return
    if rest[0] in ("help", "h"):
        sub = find(group.subcommands, rest[1]) if len(rest) > 1 else None
        if len(rest) > 1 and sub is None:
            _no_topic(rest[1])
        text = command_help(sub, f"{help_name} {sub.name}") if sub else group_app_help(group, help_name)
        sys.stdout.write(text)
        return
    sub = find(group.subcommands, rest[0])
    if sub is None:
        _no_topic(rest[0])
    _run_command(sub, f"{help_name} {sub.name}", options, rest[1:])


def _run_command(command: Command, help_name: str, options: dict, args: list[str]) -> None:
    flags = [*command.flags, HELP_FLAG]
    try:
        values, rest = parse(flags, reorder(flags, args))
    except FlagError as exc:
        _usage_error(command_help(command, help_name), exc, ":")
    if values["help"]:
        sys.stdout.write(command_help(command, help_name))
        return
    assert command.action is not None
    command.action(Context(options, values, rest))

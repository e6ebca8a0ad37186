"""etcdctl 3.4's v2 command table — names, usage lines, flags, the function each runs — and its help
pages, laid out as urfave/cli 1.22's templates and Go's tabwriter lay them out."""

from __future__ import annotations

import sys
from collections.abc import Callable

from flotilla.etcdctl.v2 import keys, members
from flotilla.etcdctl.v2.context import Context
from flotilla.etcdctl.v2.flags import Flag, help_line

__all__ = [
    "APP_NAME",
    "COMMANDS",
    "GLOBAL_FLAGS",
    "HELP_FLAG",
    "VERSION",
    "VERSION_FLAG",
    "Command",
    "app_help",
    "command_help",
    "find",
    "group_app_help",
    "subcommand_help",
]

APP_NAME = "etcdctl"
VERSION = "3.4.23"
HELP_FLAG = Flag("help, h", "bool", "show help")
VERSION_FLAG = Flag("version, v", "bool", "print the version")

GLOBAL_FLAGS = [
    Flag("debug", "bool", "output cURL commands which can be used to reproduce the request"),
    Flag("no-sync", "bool", "don't synchronize cluster information before sending request"),
    Flag(
        "output, o",
        "string",
        "output response in the given format (`simple`, `extended` or `json`)",
        "simple",
    ),
    Flag("discovery-srv, D", "string", "domain name to query for SRV records describing cluster endpoints"),
    Flag("insecure-discovery", "bool", "accept insecure SRV records describing cluster endpoints"),
    Flag("peers, C", "string", 'DEPRECATED - "--endpoints" should be used instead'),
    Flag("endpoint", "string", 'DEPRECATED - "--endpoints" should be used instead'),
    Flag(
        "endpoints",
        "string",
        "a comma-delimited list of machine addresses in the cluster (default: "
        '"http://127.0.0.1:2379,http://127.0.0.1:4001")',
    ),  # fmt: skip
    Flag("cert-file", "string", "identify HTTPS client using this SSL certificate file"),
    Flag("key-file", "string", "identify HTTPS client using this SSL key file"),
    Flag("ca-file", "string", "verify certificates of HTTPS-enabled servers using this CA bundle"),
    Flag("username, u", "string", "provide username[:password] and prompt if password is not supplied."),
    Flag("timeout", "duration", "connection timeout per request", 2.0),
    Flag("total-timeout", "duration", "timeout for the command execution (except watch)", 5.0),
]

_TTL = Flag("ttl", "int", "key time-to-live in seconds")
_SORT = Flag("sort", "bool", "returns result in sorted order")
_QUORUM = Flag("quorum, q", "bool", "require quorum for get request")
_AFTER_INDEX = Flag("after-index", "int", "watch after the given index")
_SET_DESCRIPTION = """Set sets the value of a key.

   When <value> begins with '-', <value> is interpreted as a flag.
   Insert '--' for workaround:

   $ set -- <key> <value>"""


class Command:
    """A verb: ``action`` runs it; ``subcommands`` make it a group (member, user, role, auth)."""

    def __init__(
        self,
        name: str,
        usage: str,
        args_usage: str = "",
        flags: list[Flag] | None = None,
        action: Callable[[Context], None] | None = None,
        description: str = "",
        subcommands: list[Command] | None = None,
        aliases: tuple[str, ...] = (),
    ) -> None:
        self.name, self.usage, self.args_usage = name, usage, args_usage
        self.flags = flags or []
        self.action, self.description = action, description
        self.subcommands = subcommands or []
        self.aliases = aliases


def _unsupported(ctx: Context) -> None:
    sys.stdout.flush()
    print("Error:  this verb is not supported by Flotilla's etcdctl", file=sys.stderr)
    raise SystemExit(1)


def _group(name: str, usage: str, subs: list[tuple[str, str]]) -> Command:
    return Command(name, usage, subcommands=[Command(sub, text, action=_unsupported) for sub, text in subs])


COMMANDS = [
    Command("backup", "backup an etcd directory", " ", [
        Flag("data-dir", "string", "Path to the etcd data dir"),
        Flag("wal-dir", "string", "Path to the etcd wal dir"),
        Flag("backup-dir", "string", "Path to the backup dir"),
        Flag("backup-wal-dir", "string", "Path to the backup wal dir"),
        Flag("with-v3", "bool", "Backup v3 backend data"),
    ], _unsupported),
    Command("cluster-health", "check the health of the etcd cluster", " ", [
        Flag("forever, f", "bool", "forever check the health every 10 second until CTRL+C"),
    ], members.cluster_health),
    Command("mk", "make a new key with a given value", "<key> <value>", [
        Flag("in-order", "bool", "create in-order key under directory <key>"), _TTL,
    ], keys.mk),
    Command("mkdir", "make a new directory", "<key>", [_TTL], keys.mkdir),
    Command("rm", "remove a key or a directory", "<key>", [
        Flag("dir", "bool", "removes the key if it is an empty directory or a key-value pair"),
        Flag("recursive, r", "bool", "removes the key and all child keys(if it is a directory)"),
        Flag("with-value", "string", "previous value"),
        Flag("with-index", "int", "previous index"),
    ], keys.rm),
    Command("rmdir", "removes the key if it is an empty directory or a key-value pair", "<key>",
            action=keys.rmdir),
    Command("get", "retrieve the value of a key", "<key>", [_SORT, _QUORUM], keys.get),
    Command("ls", "retrieve a directory", "[key]", [
        _SORT,
        Flag("recursive, r", "bool", "returns all key names recursively for the given path"),
        Flag("p", "bool", "append slash (/) to directories"),
        _QUORUM,
    ], keys.ls),
    Command("set", "set the value of a key", "<key> <value>", [
        _TTL,
        Flag("swap-with-value", "string", "previous value"),
        Flag("swap-with-index", "int", "previous index"),
    ], keys.set_, _SET_DESCRIPTION),
    Command("setdir", "create a new directory or update an existing directory TTL", "<key>", [_TTL],
            keys.setdir),
    Command("update", "update an existing key with a given value", "<key> <value>", [_TTL], keys.update),
    Command("updatedir", "update an existing directory", "<key> <value>", [_TTL], keys.updatedir),
    Command("watch", "watch a key for changes", "<key>", [
        Flag("forever, f", "bool", "forever watch a key until CTRL+C"),
        _AFTER_INDEX,
        Flag("recursive, r", "bool", "returns all values for key and child keys"),
    ], keys.watch),
    Command("exec-watch", "watch a key for changes and exec an executable", "<key> <command> [args...]", [
        _AFTER_INDEX, Flag("recursive, r", "bool", "watch all values for key and child keys"),
    ], keys.exec_watch),
    Command("member", "member add, remove and list subcommands", subcommands=[
        Command("list", "enumerate existing cluster members", " ", action=members.member_list),
        Command("add", "add a new member to the etcd cluster", "<name> <peerURL>", action=members.member_add),
        Command("remove", "remove an existing member from the etcd cluster", "<memberID>",
                action=members.member_remove),
        Command("update", "update an existing member in the etcd cluster", "<memberID> <peerURLs>",
                action=members.member_update),
    ]),
    _group("user", "user add, grant and revoke subcommands", [
        ("add", "add a new user for the etcd cluster"), ("get", "get details for a user"),
        ("list", "list all current users"), ("remove", "remove a user for the etcd cluster"),
        ("grant", "grant roles to an etcd user"), ("revoke", "revoke roles for an etcd user"),
        ("passwd", "change password for a user"),
    ]),
    _group("role", "role add, grant and revoke subcommands", [
        ("add", "add a new role for the etcd cluster"), ("get", "get details for a role"),
        ("list", "list all roles"), ("remove", "remove a role from the etcd cluster"),
        ("grant", "grant path matches to an etcd role"), ("revoke", "revoke path matches for an etcd role"),
    ]),
    _group("auth", "overall auth controls", [
        ("enable", "enable auth access controls"), ("disable", "disable auth access controls"),
    ]),
    Command("help", "Shows a list of commands or help for one command", "[command]", aliases=("h",)),
]  # fmt: skip


def find(commands: list[Command], name: str) -> Command | None:
    """The command called ``name`` (or aliased so)."""
    return next((c for c in commands if name == c.name or name in c.aliases), None)


def app_help() -> str:
    """``etcdctl --help``."""
    return _app_help_text(
        APP_NAME, "A simple command line client for etcd.",
        [f"{', '.join((c.name, *c.aliases))}\t{c.usage}" for c in COMMANDS],
        [help_line(flag) for flag in [*GLOBAL_FLAGS, HELP_FLAG, VERSION_FLAG]],
    )  # fmt: skip


def command_help(command: Command, help_name: str) -> str:
    """A verb's help (urfave's CommandHelpTemplate); ``help_name`` is ``etcdctl set`` and the like."""
    text = f"NAME:\n   {help_name} - {command.usage}\n\nUSAGE:\n   {help_name}"
    text += (" [command options]" if command.flags else "") + f" {command.args_usage or '[arguments...]'}"
    if command.description:
        text += f"\n\nDESCRIPTION:\n   {command.description}"
    if command.flags:
        text += "\n\nOPTIONS:\n   " + "".join(f"{help_line(flag)}\n   " for flag in command.flags)
    return _tabulate(text + "\n")


def subcommand_help(command: Command, help_name: str) -> str:
    """A command group's help (urfave's SubcommandHelpTemplate), e.g. ``etcdctl member``."""
    text = f"NAME:\n   {help_name} - {command.usage}\n\n"
    text += f"USAGE:\n   {help_name} command [command options] [arguments...]"
    text += "\n\nCOMMANDS:" + "".join(f"\n   {sub.name}\t{sub.usage}" for sub in command.subcommands)
    text += f"\n\nOPTIONS:\n   {help_line(HELP_FLAG)}\n   \n"
    return _tabulate(text)


def group_app_help(command: Command, help_name: str) -> str:
    """``etcdctl member help``: the group shown as an app of its own."""
    commands = [f"{sub.name}\t{sub.usage}" for sub in command.subcommands]
    return _app_help_text(help_name, command.usage, commands, [help_line(HELP_FLAG)])


def _app_help_text(name: str, usage: str, commands: list[str], options: list[str]) -> str:
    """urfave/cli 1.22's AppHelpTemplate."""
    lines = [
        "NAME:",
        f"   {name} - {usage}",
        "",
        "USAGE:",
        f"   {name} [global options] command [command options] [arguments...]",
        "",
        "VERSION:",
        f"   {VERSION}",
        "",
        "COMMANDS:",
        *(f"   {line}" for line in commands),
        "",
        "GLOBAL OPTIONS:",
        *(f"   {line}" for line in options),
    ]
    return _tabulate("\n".join(lines) + "\n")


def _tabulate(text: str) -> str:
    """Go's tabwriter (padding 2, spaces): in each run of lines holding a tab, the cells before the tab
    are padded to the widest one."""
    lines = text.split("\n")
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        width = max((len(line.split("\t", 1)[0]) for line in block), default=0) + 2
        out.extend(f"{line.split(chr(9), 1)[0]:<{width}}{line.split(chr(9), 1)[1]}" for line in block)
        block.clear()

    for line in lines:
        if "\t" in line:
            block.append(line)
            continue
        flush()
        out.append(line)
    flush()
    return "\n".join(out)

"""etcdctl 3.4 verbs Flotilla's etcdctl lists (so ``etcdctl --help`` reads the same) but does not run:
auth, users and roles (the server has no auth), lock, elect, make-mirror, migrate, snapshot restore and
shell completion. Each ends with ``Error: <verb> is not supported by Flotilla's etcdctl`` (exit 1)."""

from __future__ import annotations

from flotilla.etcdctl.v3.cli import Ctl
from flotilla.etcdctl.v3.cmdline import Command
from flotilla.etcdctl.v3.errors import EXIT_ERROR, fail

_GROUPS = {
    "auth <enable or disable>": ("Enable or disable authentication", [
        ("disable", "Disables authentication"), ("enable", "Enables authentication")]),
    "completion": ("Generate the autocompletion script for the specified shell", [
        ("bash", "Generate the autocompletion script for bash"),
        ("fish", "Generate the autocompletion script for fish"),
        ("powershell", "Generate the autocompletion script for powershell"),
        ("zsh", "Generate the autocompletion script for zsh")]),
    "role <subcommand>": ("Role related commands", [
        ("add <role name>", "Adds a new role"), ("delete <role name>", "Deletes a role"),
        ("get <role name>", "Gets detailed information of a role"),
        ("grant-permission [options] <role name> <permission type> <key> [endkey]", "Grants a key to a role"),
        ("list", "Lists all roles"),
        ("revoke-permission <role name> <key> [endkey]", "Revokes a key from a role")]),
    "user <subcommand>": ("User related commands", [
        ("add <user name or user:password> [options]", "Adds a new user"),
        ("delete <user name>", "Deletes a user"),
        ("get <user name> [options]", "Gets detailed information of a user"),
        ("grant-role <user name> <role name>", "Grants a role to a user"),
        ("list", "Lists all users"),
        ("passwd <user name> [options]", "Changes password of user"),
        ("revoke-role <user name> <role name>", "Revokes a role from a user")]),
}  # fmt: skip
_SINGLE = [
    ("elect <election-name> [proposal]", "Observes and participates in leader election"),
    ("lock <lockname> [exec-command arg1 arg2 ...]", "Acquires a named lock"),
    ("make-mirror [options] <destination>", "Makes a mirror at the destination etcd cluster"),
    ("migrate", "Migrates keys in a v2 store to a mvcc store"),
]


def _refuse(ctl: Ctl) -> None:
    fail(EXIT_ERROR, f"{ctl.cmd.path().removeprefix('etcdctl ')} is not supported by Flotilla's etcdctl")


def restore_command() -> Command:
    return Command(
        "restore <filename> [options]", "Restores an etcd member snapshot to an etcd directory", _refuse
    )


def commands() -> list[Command]:
    found = [Command(use, short, _refuse) for use, short in _SINGLE]
    for use, (short, children) in _GROUPS.items():
        found.append(Command(use, short).add(*(Command(u, s, _refuse) for u, s in children)))
    return found

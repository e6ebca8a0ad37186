"""The `flotilla` command: a click group that other packages extend with subcommands."""

from __future__ import annotations

import importlib

import click

from flotilla import __version__

__all__ = ["flotilla", "main"]

# Each module here defines a click command or group named `command`; adding a subcommand to
# `flotilla` means adding its module to this tuple, nothing else.
_SUBCOMMAND_MODULES = (
    "flotilla.cli.sim",
    "flotilla.cli.etcd",
    "flotilla.cli.discovery",
    "flotilla.cli.faults",
    "flotilla.cli.systemd",
    "flotilla.cli.systemctl",
    "flotilla.cli.journalctl",
    "flotilla.cli.fleetd",
    "flotilla.cli.cloudinit",
    "flotilla.cli.machine",
    "flotilla.cli.up",
    "flotilla.cli.status",
    "flotilla.cli.down",
    "flotilla.cli.kill",
)


@click.group(name="flotilla")
@click.version_option(__version__, prog_name="flotilla")
def flotilla() -> None:
    """Flotilla: the CoreOS cluster stack in Python."""


def _add_subcommands(group: click.Group) -> None:
    for module_name in _SUBCOMMAND_MODULES:
        module = importlib.import_module(module_name)
        group.add_command(module.command)


_add_subcommands(flotilla)


def main() -> None:
    """Console-script entry point (`flotilla = flotilla.cli.main:main`)."""
    flotilla()


if __name__ == "__main__":
    main()

"""``flotilla kill MACHINE``: kill one machine of the local cluster as a host failure would.

Exit codes: 0 once nothing of the machine runs, 1 for an unknown machine, one that is not running, or no
cluster; 2 for bad usage.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flotilla.cli.up import resolve_state_dir, state_dir_option

__all__ = ["command"]


@click.command("kill")
@state_dir_option
@click.argument("machine")
def command(state_dir: Path | None, machine: str) -> None:
    """Kill MACHINE (m2, its IP 127.0.0.3, or fleetctl's MACHINE column) like a host dying: SIGKILL
    to the machine, its store member, fleetd and units, with no clean shutdown."""
    from flotilla.localcluster import LocalClusterError, kill

    try:
        entry, _ = kill(resolve_state_dir(state_dir), machine)
    except LocalClusterError as error:
        click.echo(f"flotilla kill: {error}", err=True)
        sys.exit(1)
    click.echo(f"machine {entry.name} ({entry.ip}) killed")

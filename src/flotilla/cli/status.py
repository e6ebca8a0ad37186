"""``flotilla status``: the local cluster's machines, store members (from the live cluster) and fleet's
units (as ``fleetctl list-units`` shows them).

Exit codes: 0 when a cluster runs in the state directory; 1 when there is none, or none of its machines
runs (what is known about the stopped cluster is still shown).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flotilla.cli.up import resolve_state_dir, state_dir_option

__all__ = ["command"]


@click.command("status")
@state_dir_option
def command(state_dir: Path | None) -> None:
    """Show the local cluster: machines (name, IP, phase, PID), store members with the leader, and
    fleet's units."""
    from flotilla.localcluster import LocalClusterError, cluster_status, format_status

    try:
        status = cluster_status(resolve_state_dir(state_dir))
    except LocalClusterError as error:
        click.echo(f"flotilla status: {error}", err=True)
        sys.exit(1)
    click.echo(format_status(status), nl=False)
    if not status.running:  # a stopped cluster is shown, but scripts asking "is it up?" hear no
        click.echo("flotilla status: no machine is running; start the cluster with: flotilla up", err=True)
        sys.exit(1)

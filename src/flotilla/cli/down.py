"""``flotilla down``: stop the local cluster cleanly (every machine, then the discovery service).

Machine roots, journals and logs are kept; ``--purge`` removes the whole state directory. Running it
again, or where no cluster runs, is not an error. Exit codes: 0, or 1 if something could not be stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flotilla.cli.up import resolve_state_dir, state_dir_option

__all__ = ["command"]


@click.command("down")
@state_dir_option
@click.option("--purge", is_flag=True, help="Also remove the state directory (roots, logs, store data).")
def command(state_dir: Path | None, purge: bool) -> None:
    """Stop every machine of the local cluster cleanly (fleet before the store) and its discovery
    service; keep their roots and logs unless --purge."""
    from flotilla.localcluster import LocalClusterError, down

    try:
        down(resolve_state_dir(state_dir), purge=purge, echo=click.echo)
    except (LocalClusterError, OSError, RuntimeError) as error:
        click.echo(f"flotilla down: {error}", err=True)
        sys.exit(1)

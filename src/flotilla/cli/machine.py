"""``flotilla machine``: boot one machine from its cloud-config and run it until SIGTERM/SIGINT.

Exit codes: 0 after a clean stop, 1 when the cloud-config is refused (nothing written) or the boot fails,
2 for bad usage.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

__all__ = ["command"]


@click.command("machine")
@click.option(
    "--root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The machine's root directory: what its cloud-config writes lands here, never in the host's /etc.",
)
@click.option(
    "--cloud-config",
    "cloud_config",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The #cloud-config file the machine boots from.",
)
@click.option(
    "--ip",
    default="127.0.0.1",
    show_default=True,
    help="The machine's private address ($private_ipv4); give each machine its own (127.0.0.2, ...).",
)
@click.option("--public-ip", default=None, help="$public_ipv4 and fleet's public IP (default: --ip).")
@click.option(
    "--netns",
    default=None,
    help="Run the machine's processes in this existing network namespace (ip netns add NAME).",
)
def command(root: Path, cloud_config: Path, ip: str, public_ip: str | None, netns: str | None) -> None:
    """Boot one machine from its cloud-config: apply it under ROOT, start the unit manager, run the
    cloud-config's unit commands (etcd, fleet, ...), then run until SIGTERM/SIGINT and stop cleanly.

    A kill -9 of this process is a host failure: the manager and every unit die with it."""
    from flotilla.machine import BootError, MachineSpec, run_machine

    def echo(line: str) -> None:
        click.echo(f"machine {root.name}: {line}")
        sys.stdout.flush()

    spec = MachineSpec(root=root, cloud_config=cloud_config, ip=ip, public_ip=public_ip, netns=netns)
    try:
        status = asyncio.run(run_machine(spec, echo=echo))
    except BootError as error:
        click.echo(f"flotilla machine: {error}", err=True)
        sys.exit(1)
    sys.exit(status)

"""`flotilla discovery`: run etcd's public discovery service (see flotilla.discovery.service).

Exit codes: 0 after SIGTERM/SIGINT, 1 when the backing store cannot start, 2 for bad usage.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

__all__ = ["command"]


def _announce(url: str) -> None:
    # The first stdout line: scripts and tests started with --listen-addr ...:0 read the port from it.
    print(f"discovery service listening on {url}", flush=True)


@click.command("discovery")
@click.option(
    "--listen-addr",
    default="127.0.0.1:8087",
    show_default=True,
    help="host:port to serve on (port 0: any free port, printed on the first stdout line).",
)
@click.option(
    "--public-url",
    default="",
    help="Base of the token URLs handed out (default: the scheme and host each request used).",
)
@click.option(
    "--store-endpoint",
    default="",
    help="Client URL of an etcd-v2-compatible store (etcd or flotilla etcd with --enable-v2=true). "
    "Default: run a single-member Flotilla store in --data-dir.",
)
@click.option(
    "--data-dir",
    default="default.discovery",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Directory of the service's own store (unused with --store-endpoint).",
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def command(listen_addr: str, public_url: str, store_endpoint: str, data_dir: Path, log_level: str) -> None:
    """Run etcd's discovery service: /new?size=N hands out token URLs for `etcd --discovery`."""
    from flotilla.discovery.service import parse_listen_addr, run_service
    from flotilla.discovery.store import StoreStartError

    try:
        parse_listen_addr(listen_addr)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    logging.basicConfig(level=getattr(logging, log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s | %(name)s: %(message)s")  # fmt: skip
    try:
        service = run_service(
            listen_addr=listen_addr, public_url=public_url, store_endpoint=store_endpoint,
            data_dir=data_dir, on_listening=_announce,
        )  # fmt: skip
        asyncio.run(service)
    except StoreStartError as error:
        click.echo(f"flotilla discovery: {error}", err=True)
        sys.exit(1)
    except OSError as error:
        click.echo(f"flotilla discovery: cannot listen on {listen_addr}: {error}", err=True)
        sys.exit(1)

"""``flotilla fleetd``: fleet's daemon (engine, agent and HTTP API) for one machine."""

from __future__ import annotations

import asyncio
import logging
import os

import click

from flotilla.fleet.config import OPTIONS, ConfigError, load_config

__all__ = ["command"]

_HELP = {
    "etcd_servers": "Comma-separated store endpoints (etcd v3 API).",
    "etcd_key_prefix": "Key prefix of fleet's registry.",
    "etcd_request_timeout": "Seconds (or a duration) allowed per store request.",
    "public_ip": "IP address published with this machine.",
    "metadata": "Comma-delimited key=value pairs published with this machine.",
    "agent_ttl": "Presence TTL (default 2s): a machine silent this long is dead and its units move.",
    "engine_reconcile_interval": "Seconds between engine reconciles (also on every change).",
    "agent_reconcile_interval": "Seconds between agent reconciles (also on every change).",
    "disable_engine": "Never act as the engine leader.",
    "token_limit": "Page size of the HTTP API.",
    "systemd_root": "Root of the local unit manager (`flotilla systemd --root`).",
    "api_socket": "Unix socket of fleet's HTTP API (default ROOT/run/fleet.sock).",
    "api_listen": "Also serve the HTTP API on this host:port (unauthenticated unless api_cafile is set).",
    "api_certfile": "Serve api_listen over TLS with this certificate (with api_keyfile).",
    "api_keyfile": "Private key of api_certfile.",
    "api_cafile": "Require API clients on api_listen to present a certificate signed by this CA.",
    "restart_grace": "How long (default 10s) a stopped fleetd keeps its machine present for a restart.",
    "machine_id": "Machine ID (default: ROOT/etc/machine-id).",
}


def _options(function):
    for name in reversed(OPTIONS):
        if name in ("etcd_cafile", "etcd_certfile", "etcd_keyfile", "verbosity"):
            help_text = f"fleet's {name}."
        else:
            help_text = _HELP.get(name, name)
        dashed = name.replace("_", "-")
        names = [f"--{name}"] + ([f"--{dashed}"] if dashed != name else [])
        function = click.option(*names, name, default=None, metavar="VALUE", help=help_text)(function)
    return function


@click.command(name="fleetd")
@click.option("--config", "config_file", default=None, help="fleet.conf-style file (key=value lines).")
@_options
def command(config_file: str | None, **flags: str | None) -> None:
    """Run fleet's daemon: the engine (one leader per cluster), this machine's agent and fleet's HTTP API.

    Every option can also come from the config file or from FLEET_<OPTION> variables; flags win, then
    variables, then the file, as in fleet.
    """
    try:
        config = load_config(config_file=config_file, env=os.environ, flags=flags)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    logging.basicConfig(
        level=logging.DEBUG if config.verbosity > 1 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from flotilla.fleet.daemon import run_fleetd
    from flotilla.systemd import ManagerUnavailable

    try:
        asyncio.run(run_fleetd(config))
    except (ManagerUnavailable, ConfigError) as error:
        raise click.ClickException(str(error)) from None

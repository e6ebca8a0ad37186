"""fleetd: one per machine, engine and agent in one process, plus fleet's HTTP API on a local socket.

The agent drives the machine's unit manager (``flotilla systemd --root``) through ``ManagerClient``; the
units live in that manager, not in fleetd, so restarting fleetd does not touch them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from pathlib import Path

from flotilla import __version__
from flotilla.client import EtcdClient, TlsConfig
from flotilla.fleet.agent import Agent
from flotilla.fleet.config import ConfigError, FleetConfig
from flotilla.fleet.engine import Engine
from flotilla.fleet.model import Machine
from flotilla.fleet.registry import Registry
from flotilla.systemd import Layout, ManagerClient

__all__ = ["api_ssl_context", "machine_id_for", "run_fleetd"]

log = logging.getLogger("flotilla.fleet")


def machine_id_for(config: FleetConfig) -> str:
    """The configured ID, else the unit manager root's ``etc/machine-id`` (created if missing)."""
    return config.machine_id or Layout.at(config.systemd_root).machine_id()


def api_ssl_context(config: FleetConfig) -> ssl.SSLContext | None:
    """TLS for the API's TCP listener (``api_certfile``/``api_keyfile``), requiring client certificates
    signed by ``api_cafile`` when that is set; None when TLS is not configured."""
    if not config.api_certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.api_certfile, config.api_keyfile)
        if config.api_cafile:
            context.load_verify_locations(cafile=config.api_cafile)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"cannot use the API's TLS files (api_certfile/api_keyfile/api_cafile): {error}"
        ) from None
    return context


async def run_fleetd(config: FleetConfig, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tls = None
    if config.etcd_cafile or config.etcd_certfile:
        tls = TlsConfig(ca_file=config.etcd_cafile or None, cert_file=config.etcd_certfile or None,
                        key_file=config.etcd_keyfile or None)  # fmt: skip
    machine = Machine(machine_id_for(config), config.public_ip, dict(config.metadata), __version__)
    units_dir = Path(config.systemd_root) / "run/fleet/units"
    async with EtcdClient(
        list(config.etcd_servers), timeout_s=config.etcd_request_timeout, tls=tls
    ) as client:
        registry = Registry(client, config.etcd_key_prefix)
        async with ManagerClient(config.systemd_root) as manager:
            agent = Agent(
                registry, manager, machine, units_dir,
                ttl_s=max(1, round(config.agent_ttl)), reconcile_interval_s=config.agent_reconcile_interval,
                restart_grace_s=max(1, round(config.restart_grace)),
            )  # fmt: skip
            engine = Engine(
                registry, machine.id, reconcile_interval_s=config.engine_reconcile_interval,
                lease_ttl_s=max(1, round(config.agent_ttl)),
            )  # fmt: skip
            from flotilla.fleet.api import create_app, serve_api

            app = create_app(registry, token_limit=config.token_limit, version=__version__)
            async with serve_api(
                app, unix_path=str(config.api_socket_path), tcp=config.api_listen or None,
                tcp_ssl=api_ssl_context(config),
            ):  # fmt: skip
                log.info("fleetd %s: machine %s, API on %s", __version__, machine.id, config.api_socket_path)
                async with asyncio.TaskGroup() as group:
                    group.create_task(agent.run(stop))
                    if not config.disable_engine:
                        group.create_task(engine.run(stop))
                    group.create_task(stop.wait())

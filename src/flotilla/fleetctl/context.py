"""One fleetctl run: the driver chosen from the global flags, the output streams, and the machine list
fetched at most once per run (fleetctl's cachedMachineState)."""

from __future__ import annotations

import logging
import ssl
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

from flotilla.fleetctl.model import FleetAPI, FleetctlError, MachineInfo

__all__ = ["Context", "choose_driver", "make_api"]

log = logging.getLogger("flotilla.fleetctl")

# fleet treats an endpoint on etcd's client ports as "this is etcd" when no driver was chosen.
_ETCD_PORTS = ("2379", "4001")


def choose_driver(global_flags: dict[str, Any], explicit: set[str]) -> str:
    """``api`` or ``etcd``: the --driver given, else etcd when the first endpoint's port is etcd's."""
    if "driver" in explicit:
        driver = str(global_flags["driver"]).lower()
        if driver not in ("api", "etcd"):
            raise FleetctlError(
                f'unrecognized driver "{global_flags["driver"]}": use --driver=API or --driver=etcd'
            )
        return driver
    first = str(global_flags["endpoint"]).split(",")[0]
    try:
        port = urlsplit(first).port
    except ValueError:
        port = None
    return "etcd" if str(port) in _ETCD_PORTS else "api"


def make_api(global_flags: dict[str, Any], explicit: set[str]) -> FleetAPI:
    """The driver for these flags. Raises FleetctlError (printed as fleet's "Unable to initialize
    client")."""
    if global_flags["tunnel"]:
        raise FleetctlError(
            "--tunnel is not supported: Flotilla reaches fleet only through a local socket or URL"
        )
    endpoints = [e for e in str(global_flags["endpoint"]).split(",") if e]
    if not endpoints:
        raise FleetctlError("--endpoint is empty: give a unix:// or http:// URL")
    timeout_s = float(global_flags["request-timeout"])
    if choose_driver(global_flags, explicit) == "etcd":
        from flotilla.client import EtcdClient, TlsConfig
        from flotilla.fleetctl.etcd_driver import RegistryAPI

        tls = None
        if global_flags["ca-file"] or global_flags["cert-file"]:
            tls = TlsConfig(global_flags["ca-file"], global_flags["cert-file"], global_flags["key-file"])
        try:
            client = EtcdClient(endpoints, timeout_s=timeout_s, tls=tls)
        except ValueError as error:
            raise FleetctlError(str(error)) from error
        return RegistryAPI(client, global_flags["etcd-key-prefix"])
    from flotilla.fleetctl.http_driver import HttpAPI

    if len(endpoints) > 1:
        log.warning("multiple endpoints provided but only the first (%s) is used", endpoints[0])
    return HttpAPI(endpoints[0], timeout_s=timeout_s, ssl_context=_ssl_context(global_flags))


def _ssl_context(global_flags: dict[str, Any]) -> ssl.SSLContext | None:
    ca, cert, key = global_flags["ca-file"], global_flags["cert-file"], global_flags["key-file"]
    if not (ca or cert):
        return None
    try:
        context = ssl.create_default_context(cafile=ca or None)
        if cert:
            context.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as error:
        raise FleetctlError(
            f"cannot read the TLS files (--ca-file/--cert-file/--key-file): {error}"
        ) from error
    return context


@dataclass
class Context:
    """What a command runs with: the API, its own flags, the global flags and the output streams."""

    api: FleetAPI
    flags: dict[str, Any]
    global_flags: dict[str, Any]
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    _machines: dict[str, MachineInfo] | None = None
    # Why the engine could not place each unit, as last printed: say it again only when it changes.
    unschedulable_reasons: dict[str, str] = field(default_factory=dict)

    def stdout(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def stderr(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    async def machines_by_id(self) -> dict[str, MachineInfo]:
        """Every machine, fetched once per run; an error leaves the cache empty, as fleetctl does."""
        if self._machines is None:
            try:
                self._machines = {m.id: m for m in await self.api.machines()}
            except FleetctlError as error:
                log.debug("machine list unavailable: %s", error)
                self._machines = {}
        return self._machines

    async def machine(self, machine_id: str) -> MachineInfo | None:
        return (await self.machines_by_id()).get(machine_id)

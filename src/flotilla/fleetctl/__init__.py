"""fleetctl, fleet's command-line client: ``run(argv)`` and the console-script ``main()``, the two drivers
(fleet's HTTP API v1 and the registry on the store) behind the ``FleetAPI`` Protocol, and fleetctl's
Go tabwriter output."""

from flotilla.fleetctl.etcd_driver import RegistryAPI
from flotilla.fleetctl.http_driver import HttpAPI
from flotilla.fleetctl.main import main, run
from flotilla.fleetctl.model import FleetAPI, FleetctlError, MachineInfo, UnitInfo, UnitStateInfo
from flotilla.fleetctl.output import tabwrite

__all__ = [
    "FleetAPI",
    "FleetctlError",
    "HttpAPI",
    "MachineInfo",
    "RegistryAPI",
    "UnitInfo",
    "UnitStateInfo",
    "main",
    "run",
    "tabwrite",
]

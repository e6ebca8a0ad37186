"""A Flotilla machine: boots from its cloud-config under its own root directory, runs its unit manager,
store member and fleetd, stops cleanly, and dies like a host when killed."""

from .boot import run_machine
from .errors import BootError, MachineError, MachineNotRunning
from .guard import machine_pids, sweep
from .process import MachineProcess, boot, kill_machine, machine_argv, stop_machine
from .spec import MachineSpec
from .state import MachineState, read_state
from .vendor import VendorContext, etcd04_environment

__all__ = [
    "BootError",
    "MachineError",
    "MachineNotRunning",
    "MachineProcess",
    "MachineSpec",
    "MachineState",
    "VendorContext",
    "boot",
    "etcd04_environment",
    "kill_machine",
    "machine_argv",
    "machine_pids",
    "read_state",
    "run_machine",
    "stop_machine",
    "sweep",
]

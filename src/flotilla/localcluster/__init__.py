"""A local Flotilla cluster (``flotilla up/status/down/kill``): a discovery service and N machines on
127.0.0.2, 127.0.0.3, ..., all recorded in one state directory."""

from .cluster import UpOptions, cluster_pids, down, is_running, kill, require_record, up
from .config import default_cloud_config, machine_ip, machine_name, replace_discovery
from .errors import ClusterRunning, LocalClusterError, NoCluster, UnknownMachine, UpFailed
from .record import ClusterRecord, MachineEntry, default_state_dir, read_record
from .report import MachineRow, MemberRow, next_steps
from .status import ClusterStatus, cluster_status, format_status

__all__ = [
    "ClusterRecord",
    "ClusterRunning",
    "ClusterStatus",
    "LocalClusterError",
    "MachineEntry",
    "MachineRow",
    "MemberRow",
    "NoCluster",
    "UnknownMachine",
    "UpFailed",
    "UpOptions",
    "cluster_pids",
    "cluster_status",
    "default_cloud_config",
    "default_state_dir",
    "down",
    "format_status",
    "is_running",
    "kill",
    "machine_ip",
    "machine_name",
    "next_steps",
    "read_record",
    "replace_discovery",
    "require_record",
    "up",
]

"""The keys a #cloud-config may hold, their types and allowed values, as coreos-cloudinit declares them.

Types use coreos-cloudinit's (Go's) names because its messages print them: ``incorrect type for "x" (want
int)``. Keys are stored in their canonical ``_`` spelling; the documents may write ``-`` or ``_``.

Where Flotilla deliberately differs from coreos-cloudinit (written down here so nobody "fixes" it back):

* ``coreos.etcd``, ``coreos.etcd2`` and ``coreos.fleet`` are not flagged deprecated: Container Linux
  stopped shipping them, Flotilla ships all three. Keys deprecated *inside* a section still are.
* ``reboot_strategy`` also accepts ``best-effort`` (the CoreOS 2014 default the seeds' tutorials use).
* A locksmith reboot window is passed as ``LOCKSMITHD_REBOOT_WINDOW_*`` (locksmithd's current names)
  rather than the bare ``REBOOT_WINDOW_*`` coreos-cloudinit wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STRING = "string"
INT = "int"
FLOAT = "float64"
BOOL = "bool"


@dataclass(frozen=True)
class Field:
    """One key: its type (a scalar name, a ``Struct`` or a ``ListOf``), value rule and deprecation note."""

    kind: object
    valid: re.Pattern[str] | None = None
    deprecated: str = ""
    env: str = ""  # the environment name when it is not PREFIX + KEY (coreos-cloudinit's env tags)


@dataclass(frozen=True)
class Struct:
    """A mapping with known keys; ``name`` is what `incorrect type` messages call it (always "struct")."""

    fields: dict[str, Field] = field(default_factory=dict)


@dataclass(frozen=True)
class ListOf:
    """A YAML sequence whose elements all have one kind."""

    element: object


def human_type(kind: object) -> str:
    """The type as coreos-cloudinit prints it: string, int, float64, bool, struct, []string, []struct."""
    if isinstance(kind, Struct):
        return "struct"
    if isinstance(kind, ListOf):
        return "[]" + human_type(kind.element)
    assert isinstance(kind, str), kind
    return kind


def _fields(spec: dict[str, object]) -> dict[str, Field]:
    return {key: value if isinstance(value, Field) else Field(value) for key, value in spec.items()}


_ETCD2_ONLY = "etcd2 options no longer work for etcd"
_REMOTE_KEYS = "trying to fetch from a remote endpoint introduces too many intermittent errors"

# etcd 0.4 (the seeds' era): addr/peer-addr and friends; etcd2 keys are known but flagged.
ETCD = Struct(
    _fields(
        {
            "addr": STRING,
            "advertise_client_urls": Field(STRING, deprecated=_ETCD2_ONLY),
            "bind_addr": STRING,
            "ca_file": STRING,
            "cert_file": STRING,
            "cluster_active_size": INT,
            "cluster_remove_delay": FLOAT,
            "cluster_sync_interval": FLOAT,
            "cors": STRING,
            "data_dir": STRING,
            "discovery": STRING,
            "discovery_fallback": Field(STRING, deprecated=_ETCD2_ONLY),
            "discovery_srv": Field(STRING, deprecated=_ETCD2_ONLY),
            "discovery_proxy": Field(STRING, deprecated=_ETCD2_ONLY),
            "election_timeout": Field(INT, deprecated=_ETCD2_ONLY),
            "force_new_cluster": Field(BOOL, deprecated=_ETCD2_ONLY),
            "graphite_host": STRING,
            "heartbeat_interval": Field(INT, deprecated=_ETCD2_ONLY),
            "http_read_timeout": FLOAT,
            "http_write_timeout": FLOAT,
            "initial_advertise_peer_urls": Field(STRING, deprecated=_ETCD2_ONLY),
            "initial_cluster": Field(STRING, deprecated=_ETCD2_ONLY),
            "initial_cluster_state": Field(STRING, deprecated=_ETCD2_ONLY),
            "initial_cluster_token": Field(STRING, deprecated=_ETCD2_ONLY),
            "key_file": STRING,
            "listen_client_urls": Field(STRING, deprecated=_ETCD2_ONLY),
            "listen_peer_urls": Field(STRING, deprecated=_ETCD2_ONLY),
            "max_result_buffer": INT,
            "max_retry_attempts": INT,
            "max_snapshots": Field(INT, deprecated=_ETCD2_ONLY),
            "max_wals": Field(INT, deprecated=_ETCD2_ONLY),
            "name": STRING,
            "peer_addr": STRING,
            "peer_bind_addr": STRING,
            "peer_ca_file": STRING,
            "peer_cert_file": STRING,
            "peer_election_timeout": INT,
            "peer_heartbeat_interval": INT,
            "peer_key_file": STRING,
            "peers": STRING,
            "peers_file": STRING,
            "proxy": Field(STRING, deprecated=_ETCD2_ONLY),
            "retry_interval": FLOAT,
            "snapshot": BOOL,
            "snapshot_count": Field(INT, env="ETCD_SNAPSHOTCOUNT"),
            "trace": STRING,
            "verbose": BOOL,
            "very_verbose": BOOL,
            "very_very_verbose": BOOL,
        }
    )
)

ETCD2 = Struct(
    _fields(
        {
            "advertise_client_urls": STRING,
            "ca_file": Field(STRING, deprecated="ca_file obsoleted by trusted_ca_file and client_cert_auth"),
            "cert_file": STRING,
            "client_cert_auth": BOOL,
            "cors": STRING,
            "data_dir": STRING,
            "debug": BOOL,
            "discovery": STRING,
            "discovery_fallback": STRING,
            "discovery_srv": STRING,
            "discovery_proxy": STRING,
            "election_timeout": INT,
            "enable_pprof": BOOL,
            "force_new_cluster": BOOL,
            "heartbeat_interval": INT,
            "initial_advertise_peer_urls": STRING,
            "initial_cluster": STRING,
            "initial_cluster_state": Field(STRING, valid=re.compile(r"^(new|existing)$")),
            "initial_cluster_token": STRING,
            "key_file": STRING,
            "listen_client_urls": STRING,
            "listen_peer_urls": STRING,
            "log_package_levels": STRING,
            "max_snapshots": INT,
            "max_wals": INT,
            "name": STRING,
            "peer_ca_file": Field(
                STRING, deprecated="peer_ca_file obsoleted peer_trusted_ca_file and peer_client_cert_auth"
            ),
            "peer_cert_file": STRING,
            "peer_key_file": STRING,
            "peer_client_cert_auth": BOOL,
            "peer_trusted_ca_file": STRING,
            "proxy": Field(STRING, valid=re.compile(r"^(on|off|readonly)$")),
            "proxy_dial_timeout": INT,
            "proxy_failure_wait": INT,
            "proxy_read_timeout": INT,
            "proxy_refresh_interval": INT,
            "proxy_write_timeout": INT,
            "snapshot_count": INT,
            "strict_reconfig_check": BOOL,
            "trusted_ca_file": STRING,
            "wal_dir": STRING,
        }
    )
)

FLEET = Struct(
    _fields(
        {
            "agent_ttl": STRING,
            "authorized_keys_file": STRING,
            "disable_engine": BOOL,
            "engine_reconcile_interval": FLOAT,
            "etcd_cafile": STRING,
            "etcd_certfile": STRING,
            "etcd_keyfile": STRING,
            "etcd_key_prefix": STRING,
            "etcd_request_timeout": FLOAT,
            "etcd_servers": STRING,
            "etcd_username": STRING,
            "etcd_password": STRING,
            "metadata": STRING,
            "public_ip": STRING,
            "token_limit": INT,
            "verbosity": INT,
            "verify_units": BOOL,
        }
    )
)

FLANNEL = Struct(
    _fields(
        {
            "etcd_endpoints": STRING,
            "etcd_cafile": STRING,
            "etcd_certfile": STRING,
            "etcd_keyfile": STRING,
            "etcd_prefix": STRING,
            "etcd_username": STRING,
            "etcd_password": STRING,
            "ip_masq": STRING,
            "subnet_file": STRING,
            "interface": Field(STRING, env="FLANNELD_IFACE"),
            "public_ip": STRING,
        }
    )
)

LOCKSMITH = Struct(
    _fields(
        {
            "endpoint": STRING,
            "etcd_cafile": STRING,
            "etcd_certfile": STRING,
            "etcd_keyfile": STRING,
            "etcd_username": STRING,
            "etcd_password": STRING,
            "group": STRING,
            # 24-hour clock with an optional short day name, as locksmithd parses it.
            "window_start": Field(
                STRING,
                valid=re.compile(
                    r"^((?i:sun|mon|tue|wed|thu|fri|sat) )?0*([0-9]|1[0-9]|2[0-3]):0*([0-9]|[1-5][0-9])$"
                ),
                env="LOCKSMITHD_REBOOT_WINDOW_START",
            ),
            # A Go duration such as 1h30m.
            "window_length": Field(
                STRING,
                valid=re.compile(r"^[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+$"),
                env="LOCKSMITHD_REBOOT_WINDOW_LENGTH",
            ),
        }
    )
)

UPDATE = Struct(
    _fields(
        {
            "reboot_strategy": Field(STRING, valid=re.compile(r"^(etcd-lock|reboot|off|best-effort)$")),
            "group": STRING,
            "server": STRING,
        }
    )
)

OEM = Struct(
    _fields(
        {"id": STRING, "name": STRING, "version_id": STRING, "home_url": STRING, "bug_report_url": STRING}
    )
)

DROP_IN = Struct(_fields({"name": STRING, "content": STRING}))

UNIT = Struct(
    _fields(
        {
            "name": STRING,
            "mask": BOOL,
            "enable": BOOL,
            "runtime": BOOL,
            "content": STRING,
            "command": Field(
                STRING,
                valid=re.compile(
                    r"^(start|stop|restart|reload|try-restart|reload-or-restart|reload-or-try-restart)$"
                ),
            ),
            "drop_ins": ListOf(DROP_IN),
        }
    )
)

USER = Struct(
    _fields(
        {
            "name": STRING,
            "passwd": STRING,
            "ssh_authorized_keys": ListOf(STRING),
            "coreos_ssh_import_github": Field(STRING, deprecated=_REMOTE_KEYS),
            "coreos_ssh_import_github_users": Field(ListOf(STRING), deprecated=_REMOTE_KEYS),
            "coreos_ssh_import_url": Field(STRING, deprecated=_REMOTE_KEYS),
            "gecos": STRING,
            "homedir": STRING,
            "no_create_home": BOOL,
            "primary_group": STRING,
            "groups": ListOf(STRING),
            "no_user_group": BOOL,
            "system": BOOL,
            "no_log_init": BOOL,
            "shell": STRING,
        }
    )
)

ENCODINGS = ("base64", "b64", "gz", "gzip", "gz+base64", "gzip+base64", "gz+b64", "gzip+b64")

WRITE_FILE = Struct(
    _fields(
        {
            "encoding": Field(
                STRING, valid=re.compile("^(" + "|".join(re.escape(e) for e in ENCODINGS) + ")$")
            ),
            "content": STRING,
            "owner": STRING,
            "path": STRING,
            "permissions": Field(STRING, valid=re.compile(r"^0?[0-7]{3,4}$")),
        }
    )
)

COREOS = Struct(
    _fields(
        {
            "etcd": ETCD,
            "etcd2": ETCD2,
            "flannel": FLANNEL,
            "fleet": FLEET,
            "locksmith": LOCKSMITH,
            "oem": OEM,
            "update": UPDATE,
            "units": ListOf(UNIT),
        }
    )
)

CLOUD_CONFIG = Struct(
    _fields(
        {
            "ssh_authorized_keys": ListOf(STRING),
            "coreos": COREOS,
            "write_files": ListOf(WRITE_FILE),
            "hostname": STRING,
            "users": ListOf(USER),
            "manage_etc_hosts": Field(STRING, valid=re.compile(r"^localhost$")),
        }
    )
)

# coreos.<section> → the daemon's environment prefix (each becomes a 20-cloudinit.conf drop-in).
ENV_PREFIXES = {
    "etcd": "ETCD_",
    "etcd2": "ETCD_",
    "fleet": "FLEET_",
    "flannel": "FLANNELD_",
    "locksmith": "LOCKSMITHD_",
}
SECTION_SCHEMAS = {"etcd": ETCD, "etcd2": ETCD2, "fleet": FLEET, "flannel": FLANNEL, "locksmith": LOCKSMITH}

"""The typed result of a valid cloud-config: a frozen tree, every value already checked.

Daemon sections (etcd, etcd2, fleet, flannel, locksmith) are kept as ordered ``(key, value)`` pairs, keys in
the ``-`` spelling of the CoreOS docs (``peer-addr``) and values as the strings the daemons' environment
gets (``true``/``false`` for booleans), because their only consumers are flag and environment builders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Settings = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class User:
    """A ``users`` entry; ``None``/empty means "not given" (useradd's default applies)."""

    name: str
    passwd: str | None = None
    gecos: str | None = None
    homedir: str | None = None
    no_create_home: bool = False
    primary_group: str | None = None
    groups: tuple[str, ...] = ()
    no_user_group: bool = False
    ssh_authorized_keys: tuple[str, ...] = ()
    system: bool = False
    no_log_init: bool = False
    shell: str | None = None
    line: int = 0


@dataclass(frozen=True)
class WriteFile:
    """A ``write_files`` entry; ``content`` is already decoded from ``encoding``."""

    path: str
    content: bytes = b""
    permissions: int = 0o644
    owner: str | None = None
    encoding: str | None = None
    line: int = 0


@dataclass(frozen=True)
class DropIn:
    name: str
    content: str


@dataclass(frozen=True)
class Unit:
    """A ``coreos.units`` entry. ``content`` None: the unit exists already (e.g. etcd.service)."""

    name: str
    content: str | None = None
    command: str | None = None
    enable: bool = False
    runtime: bool = False
    mask: bool = False
    drop_ins: tuple[DropIn, ...] = ()
    line: int = 0

    @property
    def is_network(self) -> bool:
        """networkd units live under systemd/network and restart networkd instead of taking a command."""
        return self.name.rsplit(".", 1)[-1] in ("network", "netdev", "link")


@dataclass(frozen=True)
class Update:
    """``coreos.update``: what goes into /etc/coreos/update.conf."""

    reboot_strategy: str | None = None
    group: str | None = None
    server: str | None = None

    def is_empty(self) -> bool:
        return self.reboot_strategy is None and self.group is None and self.server is None


@dataclass(frozen=True)
class OEM:
    """``coreos.oem`` → /etc/oem-release; ignored without ``id``, as coreos-cloudinit does."""

    id: str | None = None
    name: str | None = None
    version_id: str | None = None
    home_url: str | None = None
    bug_report_url: str | None = None


@dataclass(frozen=True)
class CloudConfig:
    """One valid #cloud-config. An empty document gives the default (every field empty)."""

    hostname: str | None = None
    ssh_authorized_keys: tuple[str, ...] = ()
    users: tuple[User, ...] = ()
    write_files: tuple[WriteFile, ...] = ()
    manage_etc_hosts: str | None = None
    etcd: Settings = ()
    etcd2: Settings = ()
    fleet: Settings = ()
    flannel: Settings = ()
    locksmith: Settings = ()
    update: Update = field(default_factory=Update)
    oem: OEM = field(default_factory=OEM)
    units: tuple[Unit, ...] = ()

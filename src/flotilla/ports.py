"""Free TCP ports on loopback for the processes Flotilla starts itself (a discovery service's own store,
fault-run clusters, tests), never one of etcd's well-known ports, which other programs may hold."""

from __future__ import annotations

import socket

__all__ = ["RESERVED_PORTS", "free_port"]

RESERVED_PORTS = frozenset({2379, 2380, 4001, 7001})


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's choice), other than etcd's well-known ones."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port

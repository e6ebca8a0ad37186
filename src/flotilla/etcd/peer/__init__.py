"""The peer transport: raft messages and snapshots between members, and etcd's peer HTTP endpoints."""

from .transport import PeerTransport

__all__ = ["PeerTransport"]

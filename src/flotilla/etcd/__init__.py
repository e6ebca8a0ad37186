"""The store member: etcd's v2 and v3 APIs on the raft core.

Names are imported lazily: ``flotilla etcd --help`` and the config parser must not pay for grpc and
aiohttp, and ``flotilla.etcd.api`` (generated code) is imported through this package.
"""

from importlib import import_module as _import_module

__all__ = ["ConfigError", "EtcdConfig", "EtcdServer", "ServerSettings", "parse_args", "run_member"]

_HOMES = {
    "ConfigError": "flotilla.etcd.config",
    "EtcdConfig": "flotilla.etcd.config",
    "parse_args": "flotilla.etcd.config",
    "EtcdServer": "flotilla.etcd.server",
    "ServerSettings": "flotilla.etcd.server",
    "run_member": "flotilla.etcd.member",
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(_import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'flotilla.etcd' has no attribute {name!r}")

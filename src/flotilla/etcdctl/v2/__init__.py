"""etcdctl 3.4's v2 verbs (``ETCDCTL_API=2``): set, get, ls, mk, mkdir, setdir, update, updatedir, rm,
rmdir, watch, exec-watch, member, cluster-health — same flags, output bytes and exit codes, over the
v2 HTTP API with the standard library."""

from flotilla.etcdctl.v2.cli import main

__all__ = ["main"]

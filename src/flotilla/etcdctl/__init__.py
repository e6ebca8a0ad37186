"""etcdctl: etcd's command-line client, with etcdctl 3.4's verbs, flags, output and exit codes.

``ETCDCTL_API=2`` selects the v2 verbs (``flotilla.etcdctl.v2``), anything else the v3 verbs
(``flotilla.etcdctl.v3``), as etcdctl 3.4 does.
"""

from flotilla.etcdctl.main import main

__all__ = ["main"]

"""etcdctl's v3 verbs (``ETCDCTL_API=3``, the default), with etcdctl 3.4's flags, output formats, error
text and exit codes: ``flotilla.etcdctl.v3.main(argv)`` runs one command line and exits via SystemExit."""

from flotilla.etcdctl.v3.cli import main

__all__ = ["main"]

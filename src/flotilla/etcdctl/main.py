"""The ``etcdctl`` console script: pick the API version the way etcdctl 3.4 does, then run its verbs."""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run etcdctl with ``argv`` (default: the process's arguments); exits with etcdctl's exit code."""
    args = sys.argv[1:] if argv is None else argv
    # Ctrl-C ends a watch or a keep-alive even when the parent started us with SIGINT ignored (a script's
    # background job does): Go's signal.Notify, which etcdctl uses, takes SIGINT back in that case too.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    api = os.environ.get("ETCDCTL_API", "3").strip()
    if api == "2":
        from flotilla.etcdctl.v2 import main as run
    elif api in ("3", ""):
        from flotilla.etcdctl.v3 import main as run
    else:
        print(f"unsupported API version {api}", file=sys.stderr)  # etcdctl 3.4's words and exit code
        sys.exit(1)
    run(args)


if __name__ == "__main__":
    main()

"""The cluster's own discovery service: ``flotilla discovery`` started detached (its own session, so it
outlives ``flotilla up`` and the terminal), its data and output under the state directory.

It listens on ``127.0.0.1:0`` and announces its URL on the first line of its output, which goes to
``<state>/discovery.log`` (a file, not a pipe: nobody reads a pipe once ``up`` has exited).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .errors import UpFailed
from .record import ClusterRecord

_ANNOUNCEMENT = "discovery service listening on "
_POLL_S = 0.05
_STOP_S = 15.0


def start_discovery(record: ClusterRecord) -> subprocess.Popen[bytes]:
    """Start the service; its URL comes from :func:`wait_discovery_url`."""
    record.discovery_data_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "flotilla", "discovery", "--listen-addr", "127.0.0.1:0"]
    argv += ["--data-dir", str(record.discovery_data_dir), "--log-level", "warning"]
    with open(record.discovery_log, "wb") as log:  # a fresh log: the announcement is read from line 1
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_discovery_url(process: subprocess.Popen[bytes], log: Path, deadline: float) -> str:
    """The service's URL once it listens; UpFailed if it exits or the deadline passes."""
    while True:
        with contextlib.suppress(OSError):
            first = log.read_text(errors="replace").partition("\n")
            if first[1] and first[0].startswith(_ANNOUNCEMENT):
                return first[0].removeprefix(_ANNOUNCEMENT).strip()
        if process.poll() is not None:
            raise UpFailed(f"the discovery service exited with status {process.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise UpFailed(f"timed out: the discovery service did not start listening in time; see {log}")
        time.sleep(_POLL_S)


def new_token(discovery_url: str, size: int, timeout_s: float = 10.0) -> str:
    """A token URL for a cluster of ``size`` (``GET /new?size=N``, as from discovery.etcd.io)."""
    try:
        with urllib.request.urlopen(f"{discovery_url}/new?size={size}", timeout=timeout_s) as response:
            return response.read().decode().strip()
    except (urllib.error.URLError, OSError) as error:
        raise UpFailed(f"the discovery service at {discovery_url} gave no token: {error}") from error


def discovery_alive(record: ClusterRecord) -> bool:
    """Whether this cluster's discovery service still runs (found by its data directory, so a reused
    PID is never mistaken for it)."""
    return bool(discovery_pids(record))


def discovery_pids(record: ClusterRecord) -> set[int]:
    """Every live process of the cluster's discovery service: the service and its own store, both found
    by the service's data directory on their command lines."""
    marker = str(record.discovery_data_dir).encode()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"Z", b"X"):
            continue
        if any(marker in arg for arg in argv):
            found.add(int(entry.name))
    return found


def stop_discovery(record: ClusterRecord) -> bool:
    """SIGTERM the service (it stops its store), SIGKILL what is left after a grace period; returns
    whether anything was running."""
    pids = discovery_pids(record)
    if not pids:
        return False
    main = record.discovery_pid if record.discovery_pid in pids else min(pids)
    with contextlib.suppress(ProcessLookupError):
        os.kill(main, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_S
    while discovery_pids(record) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    for _ in range(100):
        left = discovery_pids(record)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(_POLL_S)
    return True

"""Real processes for the discovery tests: `flotilla discovery` (with its own store or another), Debian's
etcd as a v2 store or as a discovering member, all on free loopback ports, each killed at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from flotilla.ports import free_port  # noqa: F401 - the discovery tests import it from here

REAL_ETCD = "/usr/bin/etcd"
REAL_ETCDCTL = "/usr/bin/etcdctl"


def real_etcd_available() -> bool:
    return os.path.exists(REAL_ETCD) and os.path.exists(REAL_ETCDCTL)


def http(method: str, url: str, data: bytes | None = None, timeout_s: float = 10) -> tuple[int, dict, bytes]:
    """One request with urllib: status, headers, body (HTTP errors are answers too)."""
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_healthy(url: str, proc: subprocess.Popen, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if http("GET", f"{url}/health", timeout_s=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not healthy within {timeout_s}s")


def stop_process(proc: subprocess.Popen | None, grace_s: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class DiscoveryService:
    """`flotilla discovery --listen-addr 127.0.0.1:0`; ``url`` comes from its first stdout line."""

    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        self.args = [sys.executable, "-m", "flotilla.cli.main", "discovery", "--listen-addr", "127.0.0.1:0",
                     "--data-dir", str(data_dir), *extra_args]  # fmt: skip
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> DiscoveryService:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.service.log"
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout_s)
        if not lines or not lines[0].startswith("discovery service listening on "):
            self.stop()
            log_text = self.log_path.read_text(errors="replace") if self.log_path.exists() else "(no log)"
            raise RuntimeError(f"flotilla discovery did not start: {lines!r}\n{log_text[-3000:]}")
        self.url = lines[0].split()[-1]
        return self

    def store_endpoint(self) -> str:
        """The client URL of the service's own store (from its ports record)."""
        ports = json.loads((self.data_dir / "ports.json").read_text())
        return f"http://127.0.0.1:{ports['client']}"

    def stop(self) -> None:
        stop_process(self.proc)


class RealEtcd:
    """Debian's etcd on free ports: a v2 store (``enable_v2``) or a member that bootstraps by discovery."""

    def __init__(self, data_dir: Path, name: str = "store", *extra_args: str) -> None:
        self.client_port, self.peer_port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.client_port}"
        self.peer_url = f"http://127.0.0.1:{self.peer_port}"
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.args = [
            REAL_ETCD, "--name", name, "--data-dir", str(data_dir),
            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            *extra_args,
        ]  # fmt: skip
        if "--discovery" not in extra_args:
            self.args += ["--initial-cluster", f"{name}={self.peer_url}"]
        self.proc: subprocess.Popen | None = None

    def launch(self) -> RealEtcd:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        return self

    def wait_healthy(self, timeout_s: float = 60) -> RealEtcd:
        wait_healthy(self.endpoint, self.proc, f"etcd {self.args[2]}", timeout_s)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc)

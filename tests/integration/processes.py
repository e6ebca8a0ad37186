"""Real member processes for integration tests: ``flotilla etcd`` and Debian's ``etcd``, on free loopback
ports, each in its own data directory, started and waited for the way etcd's own test tools do (the
``ready to serve client requests`` log line)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flotilla.ports import RESERVED_PORTS, free_port  # noqa: F401 - tests import both from here

READY_LINE = "ready to serve client requests"
REAL_ETCD = "/usr/bin/etcd"
REAL_ETCDCTL = "/usr/bin/etcdctl"


def interruptible() -> None:
    """``preexec_fn`` for a child the test stops with SIGINT (Ctrl-C): a test run started in the
    background of a script inherits SIGINT ignored, and so would the child (Go's etcdctl keeps it so)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def self_signed_certificate(directory: Path, name: str = "test") -> tuple[Path, Path]:
    """A one-day self-signed certificate for 127.0.0.1 and its key (``name``.crt, ``name``.key); it serves
    as CA, server and client certificate alike. Needs openssl (the callers skip without it)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def real_etcd_available() -> bool:
    return os.path.exists(REAL_ETCD) and os.path.exists(REAL_ETCDCTL)


@dataclass
class MemberProcess:
    """One running member; ``endpoint`` is its client URL."""

    kind: str
    data_dir: Path
    client_port: int
    peer_port: int
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    name: str = "m1"
    initial_cluster: str = ""  # empty: a cluster of this member alone
    peer_scheme: str = "http"
    discovery: str = ""  # a discovery token URL instead of --initial-cluster
    proc: subprocess.Popen | None = None
    log: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.peer_scheme}://127.0.0.1:{self.peer_port}"

    def command(self) -> list[str]:
        client = self.endpoint
        peer = self.peer_url
        args = [
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            *(["--discovery", self.discovery] if self.discovery else
              ["--initial-cluster", self.initial_cluster or f"{self.name}={peer}"]),
            *self.extra_args,
        ]  # fmt: skip
        if self.kind == "etcd":
            return [REAL_ETCD, *args]
        return [sys.executable, "-m", "flotilla.cli.main", "etcd", *args]

    def start(self, timeout_s: float = 30.0) -> MemberProcess:
        self.launch()
        return self.wait_ready(timeout_s)

    def launch(self) -> None:
        """Start the process without waiting (members of a new cluster get ready together)."""
        self._ready.clear()
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        threading.Thread(target=self._read_log, args=(self.proc,), daemon=True).start()

    def wait_ready(self, timeout_s: float = 30.0) -> MemberProcess:
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited with {self.proc.returncode}:\n" + "\n".join(self.log[-40:])
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.kind} not ready after {timeout_s}s:\n" + "\n".join(self.log[-40:]))
        return self

    def _read_log(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            self.log.append(line.rstrip("\n"))
            if READY_LINE in line:
                self._ready.set()

    def stop(self, timeout_s: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def start_member(
    kind: str, base_dir: Path, *extra_args: str, env: dict[str, str] | None = None
) -> MemberProcess:
    client_port = free_port()
    peer_port = free_port()
    while peer_port == client_port:  # a port freed by the first probe can come back from the second
        peer_port = free_port()
    data_dir = base_dir / f"{kind}-{client_port}"
    member = MemberProcess(kind, data_dir, client_port, peer_port, list(extra_args), env or {})
    return member.start()


def start_cluster(
    kind: str,
    base_dir: Path,
    size: int = 3,
    *extra_args: str,
    env: dict[str, str] | None = None,
    peer_scheme: str = "http",
) -> list[MemberProcess]:
    """A new cluster of ``size`` members on free loopback ports (``--initial-cluster`` lists them all)."""
    ports = [(free_port(), free_port()) for _ in range(size)]
    initial = ",".join(f"m{i + 1}={peer_scheme}://127.0.0.1:{peer}" for i, (_, peer) in enumerate(ports))
    token = f"{kind}-{ports[0][0]}"
    members = [
        MemberProcess(
            kind,
            base_dir / f"{kind}-m{i + 1}-{client}",
            client,
            peer,
            ["--initial-cluster-token", token, *extra_args],
            env or {},
            name=f"m{i + 1}",
            initial_cluster=initial,
            peer_scheme=peer_scheme,
        )
        for i, (client, peer) in enumerate(ports)
    ]
    try:
        for member in members:
            member.launch()
        for member in members:
            member.wait_ready()
    except BaseException:
        for member in members:
            member.kill()
        raise
    return members


def etcdctl(
    endpoint_address: str, *args: str, api: str = "3", input: str | None = None, timeout_s: float = 30
):
    """Run Debian's etcdctl; returns the CompletedProcess (text)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = api
    return subprocess.run(
        [REAL_ETCDCTL, f"--endpoints={endpoint_address}", *args],
        capture_output=True, text=True, input=input, env=env, timeout=timeout_s,
    )  # fmt: skip


def cleanup_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

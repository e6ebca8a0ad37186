"""A cluster of real member processes (``flotilla etcd`` or Debian's ``etcd``, same flags) for fault runs.

Each member runs on loopback with free ports, or — with ``netns=True`` — in a network namespace of its own
(``flt<run>-m<i>``) with address 10.77.<run>.<i>, joined by a veth pair to a bridge in the root namespace
(10.77.<run>.254), so the runner can cut links between members (``partition.py``) while clients in the root
namespace still reach every member that is not cut off. ``close()`` kills every process and removes every
namespace and link it made, also after an error.
"""

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

import grpc

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc
from flotilla.ports import free_port

__all__ = ["ClusterError", "Member", "ProcessCluster"]

READY_LINE = "ready to serve client requests"
REAL_ETCD = "/usr/bin/etcd"
_NETNS_CLIENT_PORT = 12379
_NETNS_PEER_PORT = 12380


class ClusterError(Exception):
    """The cluster could not be set up or did not answer in time."""


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise ClusterError(f"{' '.join(args)} failed: {result.stderr.strip()}")


_clusters_made = 0


def _next_run_id() -> int:
    """A subnet number for a cluster in namespaces: distinct for every cluster this process makes (the kernel
    removes a deleted namespace's links lazily, so names are never reused right away)."""
    global _clusters_made
    _clusters_made += 1
    return (os.getpid() * 7 + _clusters_made * 31) % 200 + 20


@dataclass
class Member:
    index: int
    name: str
    host: str
    client_port: int
    peer_port: int
    data_dir: Path
    netns: str | None = None
    proc: subprocess.Popen | None = None
    paused: bool = False
    log: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://{self.address}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class ProcessCluster:
    def __init__(self, base_dir: Path, size: int = 3, *, impl: str = "flotilla", netns: bool = False,
                 heartbeat_ms: int = 100, election_ms: int = 1000) -> None:  # fmt: skip
        if impl not in ("flotilla", "etcd"):
            raise ValueError(f"impl must be flotilla or etcd, not {impl!r}")
        if impl == "etcd" and not os.path.exists(REAL_ETCD):
            raise ClusterError(f"{REAL_ETCD} is missing: apt-get install etcd-server")
        self.base_dir = Path(base_dir)
        self.impl = impl
        self.netns = netns
        self.timers = (f"--heartbeat-interval={heartbeat_ms}", f"--election-timeout={election_ms}")
        self.run_id = _next_run_id() if netns else 0
        self.bridge = f"flt{self.run_id}br"
        self.members: list[Member] = []
        self._namespaces: list[str] = []
        self._links: list[str] = []
        self._next_index = 1
        self._token = f"faults-{os.getpid()}-{int(time.time())}"
        self._bridge_made = False
        for _ in range(size):
            self.members.append(self._new_member())

    # --- set-up ------------------------------------------------------------------------------------
    def _new_member(self) -> Member:
        i = self._next_index
        self._next_index += 1
        name = f"m{i}"
        data_dir = self.base_dir / f"{name}-{int(time.time() * 1000) % 10**8}"
        if not self.netns:
            return Member(i, name, "127.0.0.1", free_port(), free_port(), data_dir)
        namespace = f"flt{self.run_id}-m{i}"
        host = f"10.77.{self.run_id}.{i}"
        return Member(i, name, host, _NETNS_CLIENT_PORT, _NETNS_PEER_PORT, data_dir, namespace)

    def _make_bridge(self) -> None:
        if self._bridge_made:
            return
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        self._bridge_made = True
        _run("ip", "addr", "add", f"10.77.{self.run_id}.254/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    def _make_namespace(self, member: Member) -> None:
        self._make_bridge()
        ns = member.netns
        host_end, ns_end = f"flt{self.run_id}h{member.index}", f"flt{self.run_id}n{member.index}"
        _run("ip", "netns", "add", ns)
        self._namespaces.append(ns)
        _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        self._links.append(host_end)
        _run("ip", "link", "set", ns_end, "netns", ns)
        _run("ip", "link", "set", host_end, "master", self.bridge)
        _run("ip", "link", "set", host_end, "up")
        _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{member.host}/24", "dev", ns_end)
        _run("ip", "netns", "exec", ns, "ip", "link", "set", ns_end, "up")

    def initial_cluster(self, members: list[Member] | None = None) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in (members or self.members))

    def _command(self, member: Member, initial_cluster: str, state: str) -> list[str]:
        args = [
            "--name", member.name, "--data-dir", str(member.data_dir),
            "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
            "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
            "--initial-cluster-token", self._token, *self.timers,
        ]  # fmt: skip
        program = [REAL_ETCD] if self.impl == "etcd" else [sys.executable, "-m", "flotilla", "etcd"]
        command = [*program, *args]
        if member.netns:
            command = ["ip", "netns", "exec", member.netns, *command]
        return command

    def _launch(self, member: Member, initial_cluster: str, state: str = "new") -> None:
        if member.netns and member.netns not in self._namespaces:
            self._make_namespace(member)
        member.ready.clear()
        member.paused = False
        member.proc = subprocess.Popen(
            self._command(member, initial_cluster, state),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._read_log, args=(member, member.proc), daemon=True).start()

    @staticmethod
    def _read_log(member: Member, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            member.log.append(line.rstrip("\n"))
            del member.log[:-200]
            if READY_LINE in line:
                member.ready.set()

    def _wait_ready(self, member: Member, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not member.ready.wait(0.05):
            tail = "\n".join(member.log[-30:])
            if member.proc.poll() is not None:
                raise ClusterError(f"{member.name} exited with {member.proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{member.name} not ready after {timeout_s:g} s:\n{tail}")

    def start(self) -> None:
        initial = self.initial_cluster()
        for member in self.members:
            self._launch(member, initial)
        for member in self.members:
            self._wait_ready(member)

    # --- faults ------------------------------------------------------------------------------------
    def kill(self, member: Member) -> None:
        if member.running:
            os.killpg(member.proc.pid, signal.SIGKILL)
            member.proc.wait(10)
        member.paused = False

    def restart(self, member: Member) -> None:
        """Start a killed member again with its data (the flags are ignored for an initialized member)."""
        self._launch(member, self.initial_cluster(), "existing")
        self._wait_ready(member)

    def pause(self, member: Member) -> None:
        if member.running and not member.paused:
            os.killpg(member.proc.pid, signal.SIGSTOP)
            member.paused = True

    def resume(self, member: Member) -> None:
        if member.running and member.paused:
            os.killpg(member.proc.pid, signal.SIGCONT)
            member.paused = False

    def replace(self, member: Member) -> Member:
        """Kill ``member``, remove it from the cluster, wipe its data, and add a new member in its place
        that joins with ``--initial-cluster-state existing``."""
        self.kill(member)
        survivors = [m for m in self.members if m is not member]
        removal = rpc_pb2.MemberRemoveRequest(ID=self.member_id(member))
        self._call(survivors, "Cluster", "MemberRemove", removal, timeout_s=30)
        shutil.rmtree(member.data_dir, ignore_errors=True)
        fresh = self._new_member()
        if self.netns:
            # The new member takes the old one's slot (and namespace): its address stays reachable.
            fresh = Member(member.index, fresh.name, member.host, member.client_port, member.peer_port,
                           fresh.data_dir, member.netns)  # fmt: skip
        self._call(survivors, "Cluster", "MemberAdd", rpc_pb2.MemberAddRequest(peerURLs=[fresh.peer_url]))
        self.members = [*survivors, fresh]
        self._launch(fresh, self.initial_cluster(), "existing")
        self._wait_ready(fresh)
        return fresh

    # --- questions ---------------------------------------------------------------------------------
    def _call(self, members: list[Member], service: str, method: str, request, timeout_s: float = 10.0):
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            for member in members:
                if not member.running or member.paused:
                    continue
                with grpc.insecure_channel(member.address) as channel:
                    stub = getattr(rpc_pb2_grpc, f"{service}Stub")(channel)
                    try:
                        return getattr(stub, method)(request, timeout=2)
                    except grpc.RpcError as error:
                        last = error
            time.sleep(0.2)
        raise ClusterError(f"{service}.{method} failed on every member: {last}")

    def status(self, member: Member) -> rpc_pb2.StatusResponse | None:
        if not member.running or member.paused:
            return None
        try:
            with grpc.insecure_channel(member.address) as channel:
                return rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest(), timeout=1)
        except grpc.RpcError:
            return None

    def member_id(self, member: Member) -> int:
        listed = self._call(self.members, "Cluster", "MemberList", rpc_pb2.MemberListRequest())
        for m in listed.members:
            if member.peer_url in m.peerURLs:
                return m.ID
        raise ClusterError(f"{member.name} ({member.peer_url}) is not in the member list")

    def leader(self, timeout_s: float = 20.0) -> Member:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for member in self.members:
                status = self.status(member)
                if status is not None and status.leader == status.header.member_id:
                    return member
            time.sleep(0.1)
        raise ClusterError("no leader")

    def hashes(self, revision: int) -> dict[str, int]:
        found = {}
        for member in self.members:
            with grpc.insecure_channel(member.address) as channel:
                stub = rpc_pb2_grpc.MaintenanceStub(channel)
                found[member.name] = stub.HashKV(rpc_pb2.HashKVRequest(revision=revision), timeout=5).hash
        return found

    # --- tear-down ---------------------------------------------------------------------------------
    def close(self) -> None:
        for member in self.members:
            if member.running:
                if member.paused:
                    self.resume(member)
                self.kill(member)
        for link in self._links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30)
        self._links.clear()
        for ns in self._namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self._namespaces.clear()
        if self._bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)
            self._bridge_made = False

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

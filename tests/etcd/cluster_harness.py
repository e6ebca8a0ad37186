"""In-process clusters for tests: several ``EtcdServer`` in one event loop, joined by ``LoopbackNet``, an
in-memory twin of the peer transport (same interface as ``flotilla.etcd.peer.PeerTransport``: messages
delivered on the next loop turn, snapshots shipped as files through the sender's ``prepare_snapshot``
into the receiver's snapshot directory, links that can be cut)."""

from __future__ import annotations

import asyncio
import shutil
import time
from contextlib import asynccontextmanager
from pathlib import Path

from flotilla.etcd.server import EtcdServer, Member, ServerSettings
from flotilla.raft import Message, MessageType

WAIT_S = 10.0
CLUSTER_ID = 0xC1


class LoopbackNet:
    def __init__(self) -> None:
        self.servers: dict[int, EtcdServer] = {}
        self.cut: set[frozenset[int]] = set()  # pairs that cannot talk
        self.snapshots_sent = 0

    def transport(self, member_id: int) -> LoopbackTransport:
        return LoopbackTransport(self, member_id)

    def isolate(self, member_id: int) -> None:
        for other in self.servers:
            if other != member_id:
                self.cut.add(frozenset((member_id, other)))

    def heal(self) -> None:
        self.cut.clear()

    def linked(self, a: int, b: int) -> bool:
        return frozenset((a, b)) not in self.cut and b in self.servers and not self.servers[b]._stopped


class LoopbackTransport:
    def __init__(self, net: LoopbackNet, member_id: int) -> None:
        self.net = net
        self.member_id = member_id
        self.peers: dict[int, tuple[str, ...]] = {}
        self.started = time.monotonic()

    async def start(self, listen_urls) -> None:
        self.started = time.monotonic()

    async def stop(self) -> None:
        self.peers.clear()

    def add_peer(self, peer_id: int, urls) -> None:
        self.peers[peer_id] = tuple(urls)

    update_peer = add_peer

    def remove_peer(self, peer_id: int) -> None:
        self.peers.pop(peer_id, None)

    def active_since(self, peer_id: int) -> float | None:
        linked = peer_id in self.peers and self.net.linked(self.member_id, peer_id)
        return self.started - 60 if linked else None

    def send(self, messages: list[Message]) -> None:
        loop = asyncio.get_running_loop()
        for m in messages:
            if m.to not in self.peers or not self.net.linked(self.member_id, m.to):
                continue
            if m.type == MessageType.SNAP:
                loop.create_task(self._ship_snapshot(m))
            else:
                loop.call_soon(self._deliver, m)

    def _deliver(self, m: Message) -> None:
        target = self.net.servers.get(m.to)
        if target is not None and self.net.linked(self.member_id, m.to):
            target.raft_step(m)

    async def _ship_snapshot(self, m: Message) -> None:
        sender, target = self.net.servers[self.member_id], self.net.servers[m.to]
        path = await sender.prepare_snapshot(m)
        try:
            received = target.paths.snap / f"{m.snapshot.index:016x}.snap.db"
            shutil.copyfile(path, received)
            self.net.snapshots_sent += 1
            target.raft_step(m)
            sender.raft.report_snapshot(m.to, True)
        finally:
            path.unlink(missing_ok=True)


def cluster_settings(base: Path, ids: list[int], member_id: int, **overrides) -> ServerSettings:
    members = [
        Member(i, f"m{i}", (f"http://127.0.0.1:{20000 + i}",), (f"http://127.0.0.1:{30000 + i}",))
        for i in ids
    ]
    values = dict(
        name=f"m{member_id}",
        data_dir=base / f"m{member_id}",
        member_id=member_id,
        cluster_id=CLUSTER_ID,
        members=members,
        heartbeat_interval_ms=10,
        election_timeout_ms=100,
        backend_commit_interval_s=0.02,
        seed=member_id,
    )
    values.update(overrides)
    return ServerSettings(**values)


class Cluster:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.net = LoopbackNet()
        self.tasks: dict[int, asyncio.Task] = {}

    def start(self, settings: ServerSettings) -> EtcdServer:
        server = EtcdServer(settings, self.net.transport(settings.member_id))
        self.net.servers[settings.member_id] = server
        self.tasks[settings.member_id] = asyncio.create_task(server.run())
        return server

    async def stop(self, member_id: int) -> None:
        server = self.net.servers[member_id]
        server.stop()
        await asyncio.wait_for(asyncio.shield(self.tasks[member_id]), WAIT_S)

    def leader(self) -> EtcdServer | None:
        for server in self.net.servers.values():
            if not server._stopped and server.is_leader():
                return server
        return None

    async def wait_leader(self) -> EtcdServer:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            await asyncio.sleep(0.01)
        raise AssertionError("no leader elected")

    async def wait_for(self, predicate, what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        for server in self.net.servers.values():
            if not server._stopped:
                server.stop()
        for task in self.tasks.values():
            await asyncio.wait_for(asyncio.shield(task), WAIT_S)


@asynccontextmanager
async def running_cluster(base: Path, size: int = 3, **overrides):
    cluster = Cluster(base)
    ids = list(range(1, size + 1))
    for i in ids:
        cluster.start(cluster_settings(base, ids, i, **overrides))
    try:
        await cluster.wait_leader()
        yield cluster
    finally:
        await cluster.close()

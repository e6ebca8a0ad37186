"""The peer transport on loopback: two or three ``PeerTransport`` in one event loop, real TCP (and TLS)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from flotilla.etcd.peer import PeerTransport
from flotilla.raft import ConfState, Entry, Message, MessageType, Snapshot

CLUSTER = 0xC1
WAIT_S = 5.0


class Node:
    """One member's transport plus everything its callbacks reported."""

    def __init__(self, base: Path, member_id: int, cluster_id: int = CLUSTER, **kwargs) -> None:
        self.member_id = member_id
        self.received: list[Message] = []
        self.unreachable: list[tuple[float, int]] = []
        self.snapshot_status: list[tuple[int, bool]] = []
        self.removed = 0
        self.snapshot_dir = base / f"snap-{member_id}"
        self.prepare: Callable | None = None
        self.on_received: Callable[[Message], None] | None = None
        self.transport = PeerTransport(
            member_id,
            cluster_id,
            on_message=self._on_message,
            on_unreachable=lambda peer: self.unreachable.append((time.monotonic(), peer)),
            on_snapshot_status=lambda peer, ok: self.snapshot_status.append((peer, ok)),
            prepare_snapshot=self._prepare_snapshot,
            snapshot_dir=self.snapshot_dir,
            on_removed=self._on_removed,
            **kwargs,
        )

    def _on_message(self, message: Message) -> None:
        if self.on_received is not None:
            self.on_received(message)
        self.received.append(message)

    def _on_removed(self) -> None:
        self.removed += 1

    async def _prepare_snapshot(self, message: Message) -> Path:
        assert self.prepare is not None
        return await self.prepare(message)

    async def start(self, url: str = "http://127.0.0.1:0") -> str:
        await self.transport.start([url])
        return self.transport.bound_urls[0]


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def app(index: int, to: int = 2, sender: int = 1) -> Message:
    entries = [Entry(3, index + 1, data=b"v%d" % index)]
    return Message(MessageType.APP, to, sender, 3, 3, index, entries, index)


def heartbeat(to: int = 2, sender: int = 1) -> Message:
    return Message(MessageType.HEARTBEAT, to, sender, term=3, commit=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def pair(tmp_path: Path, **kwargs) -> tuple[Node, Node]:
    a, b = Node(tmp_path, 1, **kwargs), Node(tmp_path, 2, **kwargs)
    url_a, url_b = await a.start(), await b.start()
    a.transport.add_peer(2, [url_b])
    b.transport.add_peer(1, [url_a])
    await wait_until(lambda: a.transport.active_since(2) is not None, "1 -> 2 to come up")
    await wait_until(lambda: b.transport.active_since(1) is not None, "2 -> 1 to come up")
    return a, b


async def stop(*nodes: Node) -> None:
    for node in nodes:
        await node.transport.stop()


def test_messages_arrive_in_order_and_in_batches(tmp_path: Path) -> None:
    async def main() -> None:
        a, b = await pair(tmp_path)
        try:
            a.transport.send([app(i) for i in range(1000)])  # one Ready's worth: batched into few writes
            for start in range(1000, 1500, 10):
                a.transport.send([app(i) for i in range(start, start + 10)])
            await wait_until(lambda: len(b.received) == 1500, "1500 messages")
            assert [m.index for m in b.received] == list(range(1500))
            assert b.received[7] == app(7)
            b.transport.send([Message(MessageType.APP_RESP, 1, 2, 3, index=1499)])
            await wait_until(lambda: len(a.received) == 1, "the response")
            assert a.received[0].index == 1499
            assert a.unreachable == [] and b.unreachable == []
        finally:
            await stop(a, b)

    asyncio.run(main())


def test_messages_to_unknown_peers_and_local_types_are_dropped(tmp_path: Path) -> None:
    async def main() -> None:
        a, b = await pair(tmp_path)
        try:
            a.transport.send([app(0, to=9), app(1, to=2)])
            await wait_until(lambda: len(b.received) == 1, "the message to the known peer")
            assert b.received[0].index == 1
        finally:
            await stop(a, b)

    asyncio.run(main())


def test_a_peer_that_starts_later_is_reached_and_reported_unreachable_meanwhile(tmp_path: Path) -> None:
    async def main() -> None:
        port = free_port()
        a, b = Node(tmp_path, 1), Node(tmp_path, 2)
        url_a = await a.start()
        a.transport.add_peer(2, [f"http://127.0.0.1:{port}"])
        try:
            # Raft keeps sending while the peer is down: dropped, reported unreachable (not per message).
            for _ in range(50):
                a.transport.send([heartbeat()])
                await asyncio.sleep(0.01)
            assert a.transport.active_since(2) is None
            assert 2 <= len(a.unreachable) <= 8, a.unreachable
            gaps = [t2 - t1 for (t1, _), (t2, _) in zip(a.unreachable, a.unreachable[1:], strict=False)]
            assert min(gaps) >= 0.09
            await b.start(f"http://127.0.0.1:{port}")
            b.transport.add_peer(1, [url_a])
            await wait_until(lambda: a.transport.active_since(2) is not None, "the late peer to come up")
            a.transport.send([app(5)])
            await wait_until(lambda: len(b.received) == 1, "a message to the late peer")
        finally:
            await stop(a, b)

    asyncio.run(main())


def test_a_peer_that_restarts_is_reconnected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flotilla.etcd.peer")

    async def main() -> None:
        a, b = await pair(tmp_path)
        url_b = b.transport.bound_urls[0]
        first_up = a.transport.active_since(2)
        await b.transport.stop()
        await wait_until(lambda: a.transport.active_since(2) is None, "the link to go down")
        a.transport.send([app(1)])  # dropped: the link is down
        b2 = Node(tmp_path, 2)
        await b2.start(url_b)
        try:
            await wait_until(lambda: a.transport.active_since(2) is not None, "the link to come back")
            assert a.transport.active_since(2) > first_up
            a.transport.send([app(2)])
            await wait_until(lambda: len(b2.received) == 1, "a message after the restart")
            assert b2.received[0].index == 2
        finally:
            await stop(a, b2)

    asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "peer 2 became" in r.getMessage()]
    assert [line.split(" (")[0] for line in lines] == [
        "peer 2 became active",
        "peer 2 became inactive",
        "peer 2 became active",
    ]


def test_update_peer_moves_to_the_new_url(tmp_path: Path) -> None:
    async def main() -> None:
        a, b = await pair(tmp_path)
        await b.transport.stop()
        b2 = Node(tmp_path, 2)
        new_url = await b2.start()
        try:
            a.transport.update_peer(2, [new_url])
            await wait_until(lambda: a.transport.active_since(2) is not None, "the link to the new URL")
            a.transport.send([app(3)])
            await wait_until(lambda: len(b2.received) == 1, "a message at the new URL")
        finally:
            await stop(a, b2)

    asyncio.run(main())


def test_remove_peer_stops_sending(tmp_path: Path) -> None:
    async def main() -> None:
        a, b = await pair(tmp_path)
        try:
            a.transport.remove_peer(2)
            assert a.transport.active_since(2) is None
            a.transport.send([app(1)])
            a.transport.add_peer(2, ["http://127.0.0.1:1"])  # add_peer is idempotent, re-adding works
            a.transport.remove_peer(2)
            await asyncio.sleep(0.1)
            assert b.received == []
            await wait_until(lambda: b.transport.active_since(1) is not None, "the other direction stays up")
            b.transport.send([app(1, to=1, sender=2)])  # inbound streams are still read (raft decides)
            await wait_until(lambda: len(a.received) == 1, "a message from the forgotten peer")
        finally:
            await stop(a, b)

    asyncio.run(main())


def _slow_writer(path: Path, chunks: list[bytes], pause_s: float) -> threading.Thread:
    def write() -> None:
        with open(path, "wb") as fifo:
            for chunk in chunks:
                fifo.write(chunk)
                fifo.flush()
                time.sleep(pause_s)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_a_snapshot_streams_while_heartbeats_keep_flowing(tmp_path: Path) -> None:
    chunks = [os.urandom(100_000) for _ in range(30)]  # 3 MB, written slowly into a FIFO by a thread
    writers: list[threading.Thread] = []

    async def main() -> None:
        a, b = await pair(tmp_path)
        fifo = tmp_path / "outgoing.snap"

        async def prepare(message: Message) -> Path:
            os.mkfifo(fifo)
            writers.append(_slow_writer(fifo, chunks, 0.01))
            return fifo

        a.prepare = prepare
        during: list[bool] = []
        stored_first: list[bool] = []
        final = b.snapshot_dir / f"{1234:016x}.snap.db"

        def watch(message: Message) -> None:
            if message.type == MessageType.HEARTBEAT:
                during.append(any(p.name.endswith(".tmp") for p in b.snapshot_dir.iterdir()))
            elif message.type == MessageType.SNAP:
                stored_first.append(final.exists())

        b.on_received = watch
        snapshot = Snapshot(1234, 3, ConfState(frozenset({1, 2}), frozenset({4})), b"v2 tree")
        try:
            a.transport.send([Message(MessageType.SNAP, 2, 1, 3, snapshot=snapshot)])
            while not a.snapshot_status:
                a.transport.send([heartbeat()])
                await asyncio.sleep(0.005)
                assert len(during) < 2000, "the snapshot never finished"
            assert a.snapshot_status == [(2, True)]
            assert sum(during) >= 5, f"only {sum(during)} heartbeats arrived during the transfer"
            assert stored_first == [True]
            snap = next(m for m in b.received if m.type == MessageType.SNAP)
            assert snap.snapshot == snapshot
            assert final.read_bytes() == b"".join(chunks)
            assert not fifo.exists(), "the sender deletes the file it streamed"
            assert [p.name for p in b.snapshot_dir.iterdir()] == [final.name]
        finally:
            await stop(a, b)

    asyncio.run(main())
    for thread in writers:
        thread.join(1)


def test_a_failed_snapshot_is_reported_and_its_file_deleted(tmp_path: Path) -> None:
    async def main() -> None:
        a = Node(tmp_path, 1)
        await a.start()
        a.transport.add_peer(2, [f"http://127.0.0.1:{free_port()}"])
        made = tmp_path / "outgoing.db"

        async def prepare(message: Message) -> Path:
            made.write_bytes(b"backend")
            return made

        a.prepare = prepare
        try:
            a.transport.send([Message(MessageType.SNAP, 2, 1, 3, snapshot=Snapshot(9, 3))])
            await wait_until(lambda: a.snapshot_status, "the snapshot status")
            assert a.snapshot_status == [(2, False)]
            assert not made.exists()
        finally:
            await stop(a)

    asyncio.run(main())


def test_a_cluster_id_mismatch_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flotilla.etcd.peer")

    async def main() -> None:
        a, b = Node(tmp_path, 1), Node(tmp_path, 2, cluster_id=0xBAD)
        await a.start()
        url_b = await b.start()
        a.transport.add_peer(2, [url_b])
        try:
            await wait_until(lambda: len(a.unreachable) >= 2, "repeated refusals")
            assert a.transport.active_since(2) is None
            a.transport.send([app(1)])
            await asyncio.sleep(0.05)
            assert b.received == []
        finally:
            await stop(a, b)

    asyncio.run(main())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "request cluster ID mismatch" in text
    assert "c1" in text and "bad" in text


def test_a_wrong_member_at_the_url_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flotilla.etcd.peer")

    async def main() -> None:
        a, b = Node(tmp_path, 1), Node(tmp_path, 2)
        await a.start()
        url_b = await b.start()
        a.transport.add_peer(3, [url_b])  # member 3's URL now belongs to member 2
        try:
            await wait_until(lambda: len(a.unreachable) >= 2, "repeated refusals")
            assert a.transport.active_since(3) is None
        finally:
            await stop(a, b)

    asyncio.run(main())
    assert any("meant for member 3" in r.getMessage() for r in caplog.records)


def test_a_removed_member_is_refused_and_told(tmp_path: Path) -> None:
    async def main() -> None:
        a = Node(tmp_path, 1)
        b = Node(tmp_path, 2, is_removed=lambda peer: peer == 1)
        url_a, url_b = await a.start(), await b.start()
        a.transport.add_peer(2, [url_b])
        b.transport.add_peer(1, [url_a])
        try:
            await wait_until(lambda: a.removed == 1, "on_removed")
            await wait_until(lambda: len(a.unreachable) >= 3, "more refusals")
            assert a.removed == 1, "told once"
            assert a.transport.active_since(2) is None
            b.transport.send([app(1, to=1, sender=2)])  # the removed member still hears the others
            await wait_until(lambda: len(a.received) == 1, "a message to the removed member")
        finally:
            await stop(a, b)

    asyncio.run(main())


def test_a_member_removed_while_connected_is_hung_up_on_and_told(tmp_path: Path) -> None:
    removed: set[int] = set()

    async def main() -> None:
        a = Node(tmp_path, 1)
        b = Node(tmp_path, 2, is_removed=lambda peer: peer in removed)
        url_a, url_b = await a.start(), await b.start()
        a.transport.add_peer(2, [url_b])
        b.transport.add_peer(1, [url_a])
        try:
            await wait_until(lambda: a.transport.active_since(2) is not None, "the link")
            removed.add(1)
            a.transport.send([heartbeat()])
            await wait_until(lambda: a.removed == 1, "on_removed")
            assert b.received == []
        finally:
            await stop(a, b)

    asyncio.run(main())


def _self_signed(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = directory / "peer.crt", directory / "peer.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def test_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(cert, key)
    client_ssl = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        a = Node(tmp_path, 1, server_ssl=server_ssl, client_ssl=client_ssl)
        b = Node(tmp_path, 2, server_ssl=server_ssl, client_ssl=client_ssl)
        url_a, url_b = await a.start("https://127.0.0.1:0"), await b.start("https://127.0.0.1:0")
        assert url_b.startswith("https://")
        a.transport.add_peer(2, [url_b])
        b.transport.add_peer(1, [url_a])
        snapshot_file = tmp_path / "out.db"

        async def prepare(message: Message) -> Path:
            snapshot_file.write_bytes(b"z" * 3_000_000)
            return snapshot_file

        a.prepare = prepare
        try:
            await wait_until(lambda: a.transport.active_since(2) is not None, "the TLS link")
            a.transport.send([app(i) for i in range(100)])
            await wait_until(lambda: len(b.received) == 100, "messages over TLS")
            a.transport.send([Message(MessageType.SNAP, 2, 1, 3, snapshot=Snapshot(77, 3))])
            await wait_until(lambda: a.snapshot_status, "the snapshot over TLS")
            assert a.snapshot_status == [(2, True)]
            assert (b.snapshot_dir / f"{77:016x}.snap.db").stat().st_size == 3_000_000
            # A plain-TCP client cannot talk to a TLS peer port.
            plain = Node(tmp_path, 3)
            await plain.start()
            plain.transport.add_peer(2, [url_b.replace("https", "http")])
            await asyncio.sleep(0.2)
            assert plain.transport.active_since(2) is None
            await plain.transport.stop()
        finally:
            await stop(a, b)

    asyncio.run(main())


def test_https_listen_url_needs_a_certificate(tmp_path: Path) -> None:
    async def main() -> None:
        a = Node(tmp_path, 1)
        with pytest.raises(ValueError, match="https"):
            await a.start("https://127.0.0.1:0")

    asyncio.run(main())


def test_the_peer_port_answers_http_members(tmp_path: Path) -> None:
    async def members(request: web.BaseRequest) -> web.Response:
        if request.path != "/members":
            return web.Response(status=404)
        body = [{"id": "1", "name": "a", "peerURLs": ["http://x"], "clientURLs": []}]
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def main() -> None:
        a = Node(tmp_path, 1, http_server=web.Server(members))
        b = Node(tmp_path, 2)
        url_a, url_b = await a.start(), await b.start()
        a.transport.add_peer(2, [url_b])
        b.transport.add_peer(1, [url_a])
        try:
            await wait_until(lambda: b.transport.active_since(1) is not None, "2 -> 1 to come up")
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{url_a}/members") as response:
                    assert response.status == 200
                    assert (await response.json())[0]["name"] == "a"
            # Raft streams still work on the same port.
            b.transport.send([app(1, to=1, sender=2)])
            await wait_until(lambda: len(a.received) == 1, "a raft message beside HTTP")
            # Without an HTTP server, whatever is not the peer protocol is hung up on.
            host, port = url_b.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /members HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await asyncio.wait_for(reader.read(), WAIT_S) == b""
            writer.close()
        finally:
            await stop(a, b)

    asyncio.run(main())


def test_garbage_after_the_magic_is_hung_up_on(tmp_path: Path) -> None:
    async def main() -> None:
        b = Node(tmp_path, 2)
        url_b = await b.start()
        host, port = url_b.removeprefix("http://").split(":")
        try:
            for garbage in (b"FLTP" + b"\xff" * 40, b"FLTP\x01"):  # bad version; a handshake cut short
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(garbage)
                if len(garbage) < 30:
                    writer.write_eof()
                assert await asyncio.wait_for(reader.read(), WAIT_S) == b""
                writer.close()
            assert b.received == []
        finally:
            await stop(b)

    asyncio.run(main())


def test_a_message_raft_rejects_does_not_cut_the_stream(tmp_path: Path) -> None:
    async def main() -> None:
        a, b = await pair(tmp_path)

        def picky(message: Message) -> None:
            if message.index == 1:
                raise RuntimeError("raft could not take it")

        b.on_received = picky
        try:
            a.transport.send([app(0), app(1), app(2)])
            await wait_until(lambda: [m.index for m in b.received] == [0, 2], "the messages around it")
            assert a.transport.active_since(2) is not None
        finally:
            await stop(a, b)

    asyncio.run(main())

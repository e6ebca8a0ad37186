"""The network between members: ``PeerTransport`` implements ``flotilla.etcd.raftnode.Transport``.

Our own protocol over TCP (or TLS), not etcd's HTTP streams (see ``wire``): per peer, one long-lived
outbound message stream fed by a bounded queue and written in batches, plus one connection per snapshot
transfer; inbound streams are read and every message handed to ``on_message`` in order. The peer port
also answers etcd's peer HTTP endpoints through an optional aiohttp ``web.Server``.

Callbacks run on the event loop. ``on_unreachable`` is called on a fresh loop turn, never from inside
``send`` (which the raft driver calls in the middle of handling a Ready).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from flotilla.raft import Message, MessageType

from .inbound import Sniffer
from .link import PeerLink, Refused
from .wire import Handshake, Status, parse_peer_url

__all__ = ["PeerTransport"]

log = logging.getLogger("flotilla.etcd.peer")

STOP_HTTP_TIMEOUT_S = 0.5


class PeerTransport:
    """Raft messages to and from this member's peers. ``send`` never blocks: a message for a peer that is
    unknown, down or too far behind is dropped (raft retries; the peer is reported unreachable)."""

    def __init__(
        self,
        member_id: int,
        cluster_id: int,
        *,
        on_message: Callable[[Message], None],
        on_unreachable: Callable[[int], None],
        on_snapshot_status: Callable[[int, bool], None],
        prepare_snapshot: Callable[[Message], Awaitable[Path]],
        snapshot_dir: Path,
        is_removed: Callable[[int], bool] = lambda _id: False,
        on_removed: Callable[[], None] = lambda: None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        http_server: web.Server | None = None,
    ) -> None:
        self.member_id = member_id
        self.cluster_id = cluster_id
        self.on_message = on_message
        self.on_unreachable = on_unreachable
        self.on_snapshot_status = on_snapshot_status
        self.prepare_snapshot = prepare_snapshot
        self.snapshot_dir = Path(snapshot_dir)
        self.is_removed = is_removed
        self.on_removed = on_removed
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.http_server = http_server
        self.bound_urls: list[str] = []
        """The URLs actually listened on, in ``start``'s order (port 0 replaced by the port bound)."""
        self.sniffing: set[asyncio.BaseTransport] = set()
        self._peer_urls: dict[int, tuple[str, ...]] = {}
        self._links: dict[int, PeerLink] = {}
        self._inbound: dict[int, asyncio.StreamWriter] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task] = set()
        self._started = False
        self._closing = False
        self._told_removed = False

    @property
    def closing(self) -> bool:
        """True once ``stop`` has begun: nothing new starts."""
        return self._closing

    # --- lifecycle ------------------------------------------------------------------------------------
    async def start(self, listen_urls: list[str]) -> None:
        """Listen on every URL (``https`` needs ``server_ssl``), then dial the peers known so far."""
        loop = asyncio.get_running_loop()
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        try:
            for url in listen_urls:
                host, port, tls = parse_peer_url(url)
                if tls and self.server_ssl is None:
                    raise ValueError(f"listen peer URL {url} is https but no peer certificate is configured")
                server = await loop.create_server(
                    lambda: Sniffer(self),
                    host,
                    port,
                    ssl=self.server_ssl if tls else None,
                    reuse_address=True,
                )
                self._servers.append(server)
                bound_port = server.sockets[0].getsockname()[1]
                shown_host = f"[{host}]" if ":" in host else host
                self.bound_urls.append(f"{'https' if tls else 'http'}://{shown_host}:{bound_port}")
        except BaseException:
            await self.stop()
            raise
        self._started = True
        log.info("member %x listening for peers on %s", self.member_id, ", ".join(self.bound_urls))
        for peer_id, urls in self._peer_urls.items():
            self._links[peer_id] = PeerLink(self, peer_id, urls)

    async def stop(self) -> None:
        """Close listeners, every connection and every task of the transport; wait for them to end."""
        self._closing = True
        for server in self._servers:
            server.close()
        for transport in list(self.sniffing):
            transport.close()
        for link in self._links.values():
            link.close()
        self._links.clear()
        for writer in self._inbound.values():
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self.http_server is not None:
            await self.http_server.shutdown(STOP_HTTP_TIMEOUT_S)

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        """Run ``coroutine`` as a task the transport owns: ``stop`` cancels and awaits it."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("peer transport task %s failed", task.get_name(), exc_info=task.exception())

    # --- peers ----------------------------------------------------------------------------------------
    def add_peer(self, peer_id: int, urls: Sequence[str]) -> None:
        """Start talking to ``peer_id`` at ``urls`` (idempotent: a known peer keeps its link)."""
        if peer_id in self._peer_urls:
            return
        self._peer_urls[peer_id] = _checked_urls(peer_id, urls)
        if self._started and not self._closing:
            self._links[peer_id] = PeerLink(self, peer_id, self._peer_urls[peer_id])

    def update_peer(self, peer_id: int, urls: Sequence[str]) -> None:
        """``peer_id`` has new URLs: reconnect there."""
        if peer_id not in self._peer_urls:
            self.add_peer(peer_id, urls)
            return
        self._peer_urls[peer_id] = _checked_urls(peer_id, urls)
        link = self._links.get(peer_id)
        if link is not None:
            link.set_urls(self._peer_urls[peer_id])

    def remove_peer(self, peer_id: int) -> None:
        """Forget ``peer_id``: stop its sender and snapshot transfers, hang up its inbound stream."""
        self._peer_urls.pop(peer_id, None)
        link = self._links.pop(peer_id, None)
        if link is not None:
            link.close()
        writer = self._inbound.pop(peer_id, None)
        if writer is not None:
            writer.close()

    def active_since(self, peer_id: int) -> float | None:
        """``time.monotonic()`` when the message stream to ``peer_id`` came up; None while it is down."""
        link = self._links.get(peer_id)
        return link.active_since if link is not None else None

    # --- sending --------------------------------------------------------------------------------------
    def send(self, messages: list[Message]) -> None:
        """Queue ``messages`` to their peers; never blocks. A SNAP starts a snapshot transfer."""
        links = self._links
        touched = set()
        for message in messages:
            link = links.get(message.to)
            if link is None:
                log.debug("dropping a %s to unknown peer %x", message.type.name, message.to)
            elif message.type == MessageType.SNAP:
                link.send_snapshot(message)
            else:
                link.enqueue(message)
                touched.add(link)
        for link in touched:
            link.flush()

    def report_unreachable_soon(self, peer_id: int) -> None:
        asyncio.get_running_loop().call_soon(self._report_unreachable, peer_id)

    def _report_unreachable(self, peer_id: int) -> None:
        if not self._closing and peer_id in self._links:
            self.on_unreachable(peer_id)

    # --- the receiving side's questions and news --------------------------------------------------------
    def check_handshake(self, handshake: Handshake) -> Status:
        """OK, or why a connection is refused (logged as etcd words it)."""
        sender = handshake.sender
        if handshake.cluster_id != self.cluster_id:
            log.warning(
                "request cluster ID mismatch (local member %x, local cluster %x, "
                "remote peer %x, remote cluster %x)",
                self.member_id, self.cluster_id, sender, handshake.cluster_id,
            )  # fmt: skip
            return Status.CLUSTER_MISMATCH
        if handshake.receiver != self.member_id:
            log.warning(
                "rejected a stream from peer %x meant for member %x (this is member %x)",
                sender, handshake.receiver, self.member_id,
            )  # fmt: skip
            return Status.WRONG_MEMBER
        if self.is_removed(sender):
            log.warning("rejected a stream from peer %x: it has been removed from the cluster", sender)
            return Status.REMOVED
        return Status.OK

    def refused(self, peer_id: int, url: str, refusal: Refused) -> None:
        """Our handshake to ``peer_id`` was refused."""
        status = refusal.status
        if status == Status.REMOVED:
            if not self._told_removed:
                self._told_removed = True
                log.error("peer %x says this member has been permanently removed from the cluster", peer_id)
                self.on_removed()
        elif status == Status.CLUSTER_MISMATCH:
            log.error(
                "request cluster ID mismatch: peer %x at %s is in cluster %x, this member in %x",
                peer_id, url, refusal.cluster_id, self.cluster_id,
            )  # fmt: skip
        else:
            log.warning("peer %x at %s refused the stream: %s", peer_id, url, refusal)

    def inbound_opened(self, sender: int, writer: asyncio.StreamWriter) -> None:
        # A new stream from a peer replaces its old one (which may be half-dead after a partition).
        old = self._inbound.get(sender)
        if old is not None and old is not writer:
            old.close()
        self._inbound[sender] = writer

    def inbound_closed(self, sender: int, writer: asyncio.StreamWriter) -> None:
        if self._inbound.get(sender) is writer:
            del self._inbound[sender]


def _checked_urls(peer_id: int, urls: Sequence[str]) -> tuple[str, ...]:
    if isinstance(urls, str):
        urls = (urls,)
    if not urls:
        raise ValueError(f"peer {peer_id:x} has no URLs")
    for url in urls:
        parse_peer_url(url)
    return tuple(urls)

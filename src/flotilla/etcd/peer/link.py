"""One peer seen from this member: the long-lived outbound message stream and snapshot transfers.

A ``PeerLink`` owns a sender task that keeps one connection to the peer open (reconnecting with
exponential backoff and jitter) and writes every queued message as one buffer per wake-up: whatever
raft produced since the last write goes out in one ``write`` and one ``drain`` (batching and pipelining:
no waiting for the peer between batches). Snapshots go on a connection of their own per transfer, so a
long transfer never holds up heartbeats and appends behind it (etcd's snapshot sender does the same).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flotilla.raft import Message, encode_message

from .wire import FRAME, REPLY, Handshake, ProtocolError, Status, StreamKind, encode_frames, parse_peer_url

if TYPE_CHECKING:
    from .transport import PeerTransport

__all__ = ["PeerLink", "Refused", "open_stream"]

log = logging.getLogger("flotilla.etcd.peer")

QUEUE_LIMIT = 4096  # etcd's streamBufSize: past it, messages are dropped and the peer reported unreachable
FLUSH_BUFFER_LIMIT = 1 << 20  # bytes waiting in the socket's buffer beyond which flush() leaves it
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0
CONNECT_TIMEOUT_S = 2.0
DRAIN_TIMEOUT_S = 5.0  # a peer that accepts no bytes for this long is as good as gone
UNREACHABLE_REPORT_INTERVAL_S = 0.1
SNAPSHOT_CHUNK_BYTES = 1 << 20
SNAPSHOT_ACK_TIMEOUT_S = 60.0  # the receiver fsyncs the whole file before it answers
_STREAM_ERRORS = (OSError, EOFError, TimeoutError, ValueError)  # ValueError: ProtocolError, bad URLs


class Refused(ConnectionError):
    """The peer answered the handshake with something other than OK."""

    def __init__(self, status: int, cluster_id: int) -> None:
        super().__init__(f"refused: {_status_name(status)}")
        self.status = status
        self.cluster_id = cluster_id


def _status_name(status: int) -> str:
    return Status(status).name if status in Status._value2member_map_ else f"status {status}"


async def open_stream(
    owner: PeerTransport, peer_id: int, url: str, kind: StreamKind
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``url``, introduce ourselves and wait for the peer's OK (or raise ``Refused``)."""
    host, port, tls = parse_peer_url(url)
    context: ssl.SSLContext | None = None
    if tls:
        context = owner.client_ssl if owner.client_ssl is not None else ssl.create_default_context()
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, limit=1 << 20), CONNECT_TIMEOUT_S
    )
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Heartbeats are tiny and latency is everything: no Nagle delay (asyncio sets it too).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.write(Handshake(kind, owner.cluster_id, owner.member_id, peer_id).encode())
        status, cluster_id = REPLY.unpack(
            await asyncio.wait_for(reader.readexactly(REPLY.size), CONNECT_TIMEOUT_S)
        )
    except BaseException:
        writer.close()
        raise
    if status != Status.OK:
        writer.close()
        raise Refused(status, cluster_id)
    return reader, writer


class PeerLink:
    """The sending side towards one peer. Created and driven by ``PeerTransport`` on its event loop."""

    def __init__(self, owner: PeerTransport, peer_id: int, urls: Sequence[str]) -> None:
        self.owner = owner
        self.peer_id = peer_id
        self.urls = tuple(urls)
        self.active_since: float | None = None
        self._queue: list[Message] = []
        self._wake = asyncio.Event()
        self._url_index = 0
        self._writer: asyncio.StreamWriter | None = None
        self._last_unreachable = -1e9
        self._dropped = 0
        self._random = random.Random()
        self._tasks: set[asyncio.Task] = set()
        self._task = owner.spawn(self._run(), f"peer-{peer_id:x}-sender")
        self._tasks.add(self._task)

    # --- called by the transport ----------------------------------------------------------------------
    def enqueue(self, message: Message) -> None:
        """Queue ``message`` for the message stream; drop it (raft retries) if the link is down or full."""
        if self.active_since is None or len(self._queue) >= QUEUE_LIMIT:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.debug(
                    "dropped %d messages to peer %x (link down or queue full)", self._dropped, self.peer_id
                )
            self.report_unreachable()
            return
        self._queue.append(message)
        self._wake.set()

    def flush(self) -> None:
        """Write what is queued now, from the caller's turn of the loop, rather than at the sender task's
        next turn: a leader's appends are on the wire before its own fsync holds the loop. Left to the
        sender task (which also waits for the socket to drain) while the socket's buffer is backed up."""
        writer = self._writer
        if writer is None or not self._queue or writer.is_closing():
            return
        if writer.transport.get_write_buffer_size() > FLUSH_BUFFER_LIMIT:
            return
        batch, self._queue = self._queue, []
        writer.write(encode_frames([encode_message(m) for m in batch]))

    def send_snapshot(self, message: Message) -> None:
        task = self.owner.spawn(self._send_snapshot(message), f"peer-{self.peer_id:x}-snapshot")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def set_urls(self, urls: Sequence[str]) -> None:
        """The peer moved: drop the current connection and dial the new URLs at once."""
        self.urls = tuple(urls)
        self._url_index = 0
        if self._writer is not None:
            self._writer.close()

    def close(self) -> None:
        """Stop sending: cancel the sender and any snapshot transfers (the transport awaits them)."""
        for task in self._tasks:
            task.cancel()
        if self._writer is not None:
            self._writer.close()

    def report_unreachable(self) -> None:
        """Tell raft the peer is unreachable, at most every UNREACHABLE_REPORT_INTERVAL_S; the call is
        deferred to a fresh loop turn since ``send`` runs in the middle of the raft driver's Ready."""
        now = time.monotonic()
        if now - self._last_unreachable < UNREACHABLE_REPORT_INTERVAL_S:
            return
        self._last_unreachable = now
        self.owner.report_unreachable_soon(self.peer_id)

    # --- the message stream ---------------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        while True:
            url = self.urls[self._url_index % len(self.urls)]
            try:
                reader, writer = await open_stream(self.owner, self.peer_id, url, StreamKind.MESSAGES)
            except _STREAM_ERRORS as error:
                self._url_index += 1
                failures += 1
                self._connect_failed(url, error, failures)
                await asyncio.sleep(self._backoff_s(failures))
                continue
            failures = 0
            self._writer = writer
            self._queue.clear()
            self.active_since = time.monotonic()
            log.info("peer %x became active (%s)", self.peer_id, url)
            reason: BaseException | str | None = "closed"
            try:
                await self._pump(reader, writer)
            except _STREAM_ERRORS as error:
                reason = error
            except asyncio.CancelledError:
                reason = None  # the transport stops or forgets this peer: no news
                raise
            finally:
                writer.close()
                self._writer = None
                self._queue.clear()
                self.active_since = None
                if reason is not None:
                    log.warning("peer %x became inactive (stream to %s lost: %s)", self.peer_id, url, reason)
            self.report_unreachable()

    def _connect_failed(self, url: str, error: BaseException, failures: int) -> None:
        self.report_unreachable()
        if isinstance(error, Refused):
            self.owner.refused(self.peer_id, url, error)
        elif failures == 1:
            log.info(
                "cannot reach peer %x at %s: %s (retrying)", self.peer_id, url, error or type(error).__name__
            )
        else:
            log.debug("cannot reach peer %x at %s: %s", self.peer_id, url, error or type(error).__name__)

    def _backoff_s(self, failures: int) -> float:
        delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** min(failures - 1, 10))
        # Jitter: two members that lost each other do not retry in step.
        return delay * (0.5 + self._random.random() / 2)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Write batches until the connection fails; the receiver never writes, so EOF means it is gone."""
        watcher = asyncio.ensure_future(self._watch_eof(reader))
        try:
            while True:
                while not self._queue and not watcher.done():
                    self._wake.clear()
                    await self._wake.wait()
                if watcher.done():
                    raise ConnectionResetError("the peer closed the stream")
                batch, self._queue = self._queue, []
                writer.write(encode_frames([encode_message(m) for m in batch]))
                await asyncio.wait_for(writer.drain(), DRAIN_TIMEOUT_S)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _watch_eof(self, reader: asyncio.StreamReader) -> None:
        try:
            while await reader.read(4096):
                pass
        except _STREAM_ERRORS:
            pass
        finally:
            self._wake.set()

    # --- snapshots ------------------------------------------------------------------------------------
    async def _send_snapshot(self, message: Message) -> None:
        """Stream the file ``prepare_snapshot`` makes for ``message``, then report the outcome to raft.
        The file is deleted whatever happens."""
        index = message.snapshot.index if message.snapshot is not None else 0
        path: Path | None = None
        ok = False
        started = time.monotonic()
        try:
            path = await self.owner.prepare_snapshot(message)
            size = await self._stream_snapshot(message, path)
            ok = True
            log.info(
                "sent the snapshot at index %d to peer %x (%d bytes in %.2fs)",
                index, self.peer_id, size, time.monotonic() - started,
            )  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception as error:  # any failure is reported to raft, which retries later
            log.warning("sending the snapshot at index %d to peer %x failed: %s", index, self.peer_id, error)
        finally:
            if path is not None:
                path.unlink(missing_ok=True)  # a metadata operation: fine on the loop
        self.owner.on_snapshot_status(self.peer_id, ok)

    async def _stream_snapshot(self, message: Message, path: Path) -> int:
        url = self.urls[self._url_index % len(self.urls)]
        reader, writer = await open_stream(self.owner, self.peer_id, url, StreamKind.SNAPSHOT)
        sent = 0
        try:
            file = await asyncio.to_thread(open, path, "rb")
            try:
                writer.write(encode_frames([encode_message(message)]))
                while chunk := await asyncio.to_thread(file.read, SNAPSHOT_CHUNK_BYTES):
                    writer.write(FRAME.pack(len(chunk)))
                    writer.write(chunk)
                    sent += len(chunk)
                    await asyncio.wait_for(writer.drain(), DRAIN_TIMEOUT_S)
            finally:
                file.close()
            writer.write(FRAME.pack(0))
            await asyncio.wait_for(writer.drain(), DRAIN_TIMEOUT_S)
            reply = await asyncio.wait_for(reader.readexactly(REPLY.size), SNAPSHOT_ACK_TIMEOUT_S)
        finally:
            writer.close()
        status, _ = REPLY.unpack(reply)
        if status != Status.OK:
            raise ProtocolError(f"the peer did not store the snapshot ({_status_name(status)})")
        return sent

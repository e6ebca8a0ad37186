"""The receiving side of the peer port: sniff each connection, check its handshake, read its stream.

A connection that starts with the peer protocol's magic is a raft stream from another member; anything
else (an HTTP request line: etcd's ``GET /members`` and ``/version`` live on the peer port) is handed,
socket and all, to the member's aiohttp server, the way ``flotilla.etcd.listener`` hands HTTP/1 over.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from flotilla.raft import CodecError, Message, MessageType, decode_message
from flotilla.raft.types import LOCAL_MESSAGE_TYPES

from .wire import (
    FRAME,
    HANDSHAKE,
    MAGIC,
    MAX_FRAME_BYTES,
    REPLY,
    Handshake,
    ProtocolError,
    Status,
    StreamKind,
    split_frames,
)

if TYPE_CHECKING:
    from .transport import PeerTransport

__all__ = ["Sniffer", "serve_stream", "snapshot_path"]

log = logging.getLogger("flotilla.etcd.peer")

HANDSHAKE_TIMEOUT_S = 5.0
SNAPSHOT_IDLE_TIMEOUT_S = 30.0  # a snapshot sender silent this long has failed
_READ_BYTES = 1 << 18
_STREAM_ERRORS = (OSError, EOFError, TimeoutError, ValueError)  # ValueError: ProtocolError, CodecError


def snapshot_path(snapshot_dir: Path, index: int) -> Path:
    """Where a received snapshot's backend file lands (the server looks for it there)."""
    return snapshot_dir / f"{index:016x}.snap.db"


class Sniffer(asyncio.Protocol):
    """The first protocol of every accepted connection: looks at the first bytes, then hands over."""

    def __init__(self, owner: PeerTransport) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.owner.sniffing.add(transport)
        # A connection that never says anything must not stay open forever.
        self._timer = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT_S, transport.close)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) < len(MAGIC) and MAGIC.startswith(self.buffer):
            return
        self._done()
        transport, buffered = self.transport, self.buffer
        if self.owner.closing:
            transport.close()
        elif buffered.startswith(MAGIC):
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
            protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            protocol.data_received(buffered)
            self.owner.spawn(serve_stream(self.owner, reader, writer), "peer-inbound")
        elif self.owner.http_server is not None:
            protocol = self.owner.http_server()
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            protocol.data_received(buffered)
        else:
            log.debug("closing a peer-port connection that does not speak the peer protocol")
            transport.close()

    def connection_lost(self, exc) -> None:
        self._done()

    def _done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.owner.sniffing.discard(self.transport)


async def serve_stream(
    owner: PeerTransport, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer the handshake, then read the stream it announced until it ends."""
    try:
        data = await asyncio.wait_for(reader.readexactly(HANDSHAKE.size), HANDSHAKE_TIMEOUT_S)
        handshake = Handshake.decode(data)
    except _STREAM_ERRORS as error:
        log.debug("dropping a peer connection with a bad handshake: %s", error)
        writer.close()
        return
    status = owner.check_handshake(handshake)
    try:
        writer.write(REPLY.pack(status, owner.cluster_id))
        if status != Status.OK:
            await asyncio.wait_for(writer.drain(), HANDSHAKE_TIMEOUT_S)
            return
        if handshake.kind == StreamKind.MESSAGES:
            await _read_messages(owner, handshake.sender, reader, writer)
        else:
            await _receive_snapshot(owner, handshake.sender, reader, writer)
    except _STREAM_ERRORS as error:
        log.debug("stream from peer %x ended: %s", handshake.sender, error or type(error).__name__)
    finally:
        writer.close()


async def _read_messages(
    owner: PeerTransport, sender: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Hand every message on the stream to raft, in order, until the sender hangs up."""
    owner.inbound_opened(sender, writer)
    try:
        buffer = bytearray()
        while data := await reader.read(_READ_BYTES):
            buffer += data
            frames = split_frames(buffer)
            if owner.is_removed(sender):
                # Hang up: its next handshake is refused with REMOVED, which tells it to stop.
                log.warning("rejected the stream from peer %x: it has been removed from the cluster", sender)
                return
            for frame in frames:
                try:
                    message = decode_message(frame)
                except CodecError as error:
                    raise ProtocolError(f"a garbled message from peer {sender:x}: {error}") from None
                _deliver(owner, sender, message)
    finally:
        owner.inbound_closed(sender, writer)


_NEVER_ON_A_STREAM = LOCAL_MESSAGE_TYPES | {MessageType.SNAP}


def _deliver(owner: PeerTransport, sender: int, message: Message) -> None:
    # A SNAP is only valid on a snapshot stream, which stores its file first; local types never travel.
    # PROP and READ_INDEX do travel: a follower forwards them to its leader.
    if message.to != owner.member_id or message.type in _NEVER_ON_A_STREAM:
        log.debug("dropping a %s from peer %x addressed to %x", message.type.name, sender, message.to)
        return
    try:
        owner.on_message(message)
    except Exception:  # one message raft cannot take must not cut the stream for the ones behind it
        log.exception("handling a %s from peer %x failed", message.type.name, sender)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = FRAME.unpack(await asyncio.wait_for(reader.readexactly(FRAME.size), SNAPSHOT_IDLE_TIMEOUT_S))
    if length > MAX_FRAME_BYTES:
        raise ProtocolError(f"a peer frame of {length} bytes: the stream is corrupt")
    return await asyncio.wait_for(reader.readexactly(length), SNAPSHOT_IDLE_TIMEOUT_S)


async def _receive_snapshot(
    owner: PeerTransport, sender: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Store the streamed backend file durably, only then hand the SNAP message to raft, then answer."""
    try:
        message = decode_message(await _read_frame(reader))
    except CodecError:
        writer.write(REPLY.pack(Status.FAILED, owner.cluster_id))
        raise
    if message.type != MessageType.SNAP or message.snapshot is None or message.to != owner.member_id:
        writer.write(REPLY.pack(Status.FAILED, owner.cluster_id))
        raise ProtocolError(f"a snapshot stream from peer {sender:x} carried a {message.type.name}")
    final = snapshot_path(owner.snapshot_dir, message.snapshot.index)
    temporary = final.with_name(final.name + ".tmp")
    file = await asyncio.to_thread(open, temporary, "wb")
    size = 0
    try:
        while chunk := await _read_frame(reader):
            size += len(chunk)
            await asyncio.to_thread(file.write, chunk)
        await asyncio.to_thread(_sync_and_close, file)
        await asyncio.to_thread(_publish, temporary, final)
    except BaseException:
        file.close()
        temporary.unlink(missing_ok=True)
        raise
    log.info(
        "received the snapshot at index %d from peer %x (%d bytes)", message.snapshot.index, sender, size
    )
    owner.on_message(message)
    writer.write(REPLY.pack(Status.OK, owner.cluster_id))
    await asyncio.wait_for(writer.drain(), HANDSHAKE_TIMEOUT_S)


def _sync_and_close(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()


def _publish(temporary: Path, final: Path) -> None:
    """Rename into place and make the rename durable (the directory's entry is what a restart finds)."""
    os.replace(temporary, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

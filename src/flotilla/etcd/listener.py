"""One client port for gRPC and HTTP/1, as etcd serves both on its client URLs (its cmux).

Each accepted connection is sniffed: an HTTP/2 connection preface (``PRI * HTTP/2.0``) means gRPC and is
relayed to the member's gRPC server on a private abstract unix socket; anything else is HTTP/1 and is
handed, socket and all, to the aiohttp server (no relay: aiohttp's protocol takes over the transport).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import Callable

__all__ = ["ClientGone", "ClientListener", "client_gone"]

log = logging.getLogger("flotilla.etcd")

_H2_PREFACE_START = b"PRI "
_RELAY_HIGH_WATER = 1 << 20


class _Relay(asyncio.Protocol):
    """One direction's receiving end of a byte relay; ``peer`` is the other side's transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: asyncio.Transport | None = None
        self.pending = bytearray()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=_RELAY_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.pending += data
        else:
            self.peer.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None and self.peer.can_write_eof():
            self.peer.write_eof()
        return True

    def connection_lost(self, exc) -> None:
        if self.peer is not None:
            self.peer.close()

    # Flow control: when the peer cannot keep up, stop reading from our side.
    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume_reading()


class ClientGone:
    """Whether the HTTP client on a connection has stopped sending (EOF) or disconnected: what Go's
    CloseNotify reports. A long-lived response (a v2 watch) ends on it; a plain request still answers."""

    __slots__ = ("_callbacks", "_set", "__weakref__")

    def __init__(self) -> None:
        self._set = False
        self._callbacks: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback()

    def add_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the client is gone (at once if it already is)."""
        if self._set:
            callback()
        else:
            self._callbacks.append(callback)

    def remove_callback(self, callback: Callable[[], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)


_CLIENT_GONE: weakref.WeakKeyDictionary[asyncio.BaseTransport, ClientGone] = weakref.WeakKeyDictionary()


def client_gone(transport: asyncio.BaseTransport | None) -> ClientGone:
    """The ClientGone of the HTTP connection on ``transport`` (None: a connection already closed)."""
    if transport is None:
        gone = ClientGone()
        gone.set()
        return gone
    return _CLIENT_GONE.setdefault(transport, ClientGone())


class _HalfCloseTolerant(asyncio.Protocol):
    """Wraps aiohttp's HTTP/1 protocol so a client that half-closes after its request (``curl`` with a
    shut-down write side, ``nc -q``) still gets the response, as etcd's Go server answers it: aiohttp
    returns None from ``eof_received``, which closes the transport before the reply is written."""

    def __init__(self, inner: asyncio.Protocol) -> None:
        self.inner = inner
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool:
        self.inner.eof_received()
        client_gone(self.transport).set()
        return True

    def connection_lost(self, exc) -> None:
        client_gone(self.transport).set()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _Sniffer(asyncio.Protocol):
    def __init__(self, listener: ClientListener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) < len(_H2_PREFACE_START) and _H2_PREFACE_START.startswith(self.buffer):
            return
        transport, buffered = self.transport, self.buffer
        if buffered.startswith(_H2_PREFACE_START):
            transport.pause_reading()
            client_side = _Relay()
            client_side.connection_made(transport)
            transport.set_protocol(client_side)
            self.listener._spawn(self.listener._connect_grpc(client_side, buffered))
        else:
            protocol = _HalfCloseTolerant(self.listener.http_protocol_factory())
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            protocol.data_received(buffered)

    def connection_lost(self, exc) -> None:
        pass


class ClientListener:
    """Accepts client connections on ``host:port`` and dispatches them to gRPC or HTTP."""

    def __init__(self, host: str, port: int, grpc_unix_path: str, http_protocol_factory: Callable) -> None:
        self.host = host
        self.port = port
        self.grpc_unix_path = grpc_unix_path
        self.http_protocol_factory = http_protocol_factory
        self._server: asyncio.Server | None = None
        self._connecting: set[asyncio.Task] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Sniffer(self), self.host, self.port, reuse_address=True
        )

    def _spawn(self, coroutine) -> None:
        # Protocol callbacks cannot await: the connect runs as a task the listener tracks and cancels.
        task = asyncio.ensure_future(coroutine)
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_grpc(self, client_side: _Relay, buffered: bytes) -> None:
        loop = asyncio.get_running_loop()
        client = client_side.transport
        try:
            # Connect the socket ourselves: not every event loop accepts an abstract socket path.
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, self.grpc_unix_path)
            except OSError:
                sock.close()
                raise
            grpc_transport, grpc_side = await loop.create_unix_connection(_Relay, sock=sock)
        except OSError as error:
            log.warning("cannot reach the gRPC server: %s", error)
            client.close()
            return
        grpc_side.peer = client
        client_side.peer = grpc_transport
        grpc_transport.write(buffered + bytes(client_side.pending))
        client_side.pending.clear()
        if client.is_closing():
            grpc_transport.close()
            return
        client.resume_reading()

    async def close(self) -> None:
        for task in list(self._connecting):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

"""The sd_notify protocol: a datagram socket a ``Type=notify`` service reports READY=1 (and more) on.

Each notify service gets its own socket (``NOTIFY_SOCKET`` in its environment), so a message's unit is
known from the socket it arrived on; the sender's PID comes from SCM_CREDENTIALS and is checked against
``NotifyAccess=`` by the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

__all__ = ["NotifyListener", "parse_notify_message"]

_CREDENTIALS = struct.Struct("iII")  # struct ucred: pid, uid, gid


def parse_notify_message(data: bytes) -> dict[str, str]:
    """``READY=1\\nSTATUS=...`` into a dict; lines without ``=`` are ignored, as sd_notify's are."""
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep and key:
            fields[key] = value
    return fields


class NotifyListener:
    def __init__(self, path: Path, on_message: Callable[[int | None, dict[str, str]], None]) -> None:
        self.path = path
        self._on_message = on_message
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o666)  # a service may run as another User=
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._read)

    def _read(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data, ancdata, _flags, _addr = self._sock.recvmsg(4096, socket.CMSG_SPACE(_CREDENTIALS.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            pid = None
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = _CREDENTIALS.unpack(payload[: _CREDENTIALS.size])[0]
            self._on_message(pid, parse_notify_message(data))

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

"""The peer protocol's bytes: the handshake that opens a connection, its answer, and frames.

A connection from member A to member B starts with A's handshake (magic, version, stream kind, cluster ID,
A's ID, B's ID); B answers with one status and its cluster ID. On a *messages* stream A then sends frames
(a u32 length, then an encoded raft message) for as long as the connection lives; B never writes again.
On a *snapshot* stream A sends one frame (the SNAP message), then the backend file as a run of frames
(chunks) ended by an empty frame; B answers one status once the file is stored and the message handed
to raft. Chunked rather than sized: the sender streams what it reads without knowing the size first.

Anything that does not start with the magic is not ours: the peer port hands it to its HTTP server
(etcd's ``/members`` and ``/version`` live on the peer port).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import IntEnum
from urllib.parse import urlsplit

__all__ = [
    "FRAME",
    "HANDSHAKE",
    "MAGIC",
    "MAX_FRAME_BYTES",
    "REPLY",
    "VERSION",
    "Handshake",
    "ProtocolError",
    "Status",
    "StreamKind",
    "encode_frames",
    "parse_peer_url",
    "split_frames",
]

MAGIC = b"FLTP"
VERSION = 1
HANDSHAKE = struct.Struct(">4sBBQQQ")  # magic, version, kind, cluster ID, sender ID, receiver ID
REPLY = struct.Struct(">BQ")  # status, the receiver's cluster ID
FRAME = struct.Struct(">I")
MAX_FRAME_BYTES = 256 * 1024 * 1024


class ProtocolError(ValueError):
    """The peer broke the protocol (bad magic or version, oversized frame, unexpected message)."""


class StreamKind(IntEnum):
    MESSAGES = 0
    SNAPSHOT = 1


class Status(IntEnum):
    OK = 0
    CLUSTER_MISMATCH = 1
    WRONG_MEMBER = 2  # the receiver is not the member the sender wanted (its peer URL was reused)
    REMOVED = 3  # the sender was removed from the cluster: it must stop
    BAD_HANDSHAKE = 4
    FAILED = 5  # a snapshot stream: the receiver could not store the file


class Handshake:
    """The first bytes of a peer connection."""

    __slots__ = ("cluster_id", "kind", "receiver", "sender")

    def __init__(self, kind: StreamKind, cluster_id: int, sender: int, receiver: int) -> None:
        self.kind = kind
        self.cluster_id = cluster_id
        self.sender = sender
        self.receiver = receiver

    def encode(self) -> bytes:
        return HANDSHAKE.pack(MAGIC, VERSION, self.kind, self.cluster_id, self.sender, self.receiver)

    @classmethod
    def decode(cls, data: bytes) -> Handshake:
        magic, version, kind, cluster_id, sender, receiver = HANDSHAKE.unpack(data)
        if magic != MAGIC:
            raise ProtocolError(f"not a peer connection (magic {magic!r})")
        if version != VERSION:
            raise ProtocolError(f"peer protocol version {version}, this member speaks {VERSION}")
        if kind not in StreamKind._value2member_map_:
            raise ProtocolError(f"unknown peer stream kind {kind}")
        return cls(StreamKind(kind), cluster_id, sender, receiver)


def encode_frames(payloads: Iterable[bytes]) -> bytes:
    """Frames for ``payloads``, in order, as one buffer (one write for a whole batch)."""
    pack = FRAME.pack
    parts = []
    for payload in payloads:
        parts.append(pack(len(payload)))
        parts.append(payload)
    return b"".join(parts)


def split_frames(buffer: bytearray) -> list[bytes]:
    """Take every complete frame off the front of ``buffer``; the bytes of an incomplete one stay.
    Raises ProtocolError on a frame longer than any raft message may be (a corrupt stream)."""
    frames = []
    pos = 0
    size = len(buffer)
    unpack = FRAME.unpack_from
    while size - pos >= 4:
        (length,) = unpack(buffer, pos)
        if length > MAX_FRAME_BYTES:
            raise ProtocolError(f"a peer frame of {length} bytes: the stream is corrupt")
        end = pos + 4 + length
        if end > size:
            break
        frames.append(bytes(buffer[pos + 4 : end]))
        pos = end
    if pos:
        del buffer[:pos]
    return frames


def parse_peer_url(url: str) -> tuple[str, int, bool]:
    """``http://host:port`` or ``https://host:port`` → (host, port, tls). Raises ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"peer URL {url!r}: want http://host:port or https://host:port")
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"peer URL {url!r}: {error}") from None
    if port is None:
        raise ValueError(f"peer URL {url!r} has no port")
    return parts.hostname, port, parts.scheme == "https"

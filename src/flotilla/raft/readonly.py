"""ReadIndex bookkeeping on the leader (raft thesis §6.4): reads wait for a heartbeat quorum."""

from __future__ import annotations

from dataclasses import dataclass, field

from .types import Message


@dataclass(slots=True)
class ReadIndexStatus:
    request: Message  # the READ_INDEX, kept to answer whoever asked
    index: int  # the commit index when the read arrived
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    """Pending reads in arrival order, keyed by their unique request context."""

    def __init__(self) -> None:
        self._pending: dict[bytes, ReadIndexStatus] = {}
        self._queue: list[bytes] = []

    def add_request(self, index: int, request: Message, self_id: int) -> None:
        ctx = request.context
        if ctx in self._pending:
            return
        self._pending[ctx] = ReadIndexStatus(request, index, {self_id})
        self._queue.append(ctx)

    def recv_ack(self, member_id: int, ctx: bytes) -> set[int] | None:
        status = self._pending.get(ctx)
        if status is None:
            return None
        status.acks.add(member_id)
        return status.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Every read queued up to and including ``ctx``: a quorum acknowledging a later heartbeat
        also confirms leadership for reads that arrived before it."""
        if ctx not in self._pending:
            return []
        position = self._queue.index(ctx) + 1
        released = [self._pending.pop(c) for c in self._queue[:position]]
        del self._queue[:position]
        return released

    def last_pending_ctx(self) -> bytes | None:
        return self._queue[-1] if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)

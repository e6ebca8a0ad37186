"""The raft driver of a member: ticks, proposals, Ready handling with group commit, ReadIndex batching.

It runs the raft core (``RawNode``) on the event loop and follows the Ready contract
(``flotilla.raft.Ready``):

1. leader messages go out at once;
2. the snapshot, entries and hard state are written to the WAL with one fsync — in a worker thread when
   the disk is slow (while it runs, committed entries that are already durable are applied on the loop,
   and new proposals pile up in ``_pending``), on the loop itself when the disk's recent writes took
   under ``INLINE_WRITE_MAX_S`` (then requests pile up in the sockets). Either way every proposal pending
   when a write starts goes into the next single fsync: the group commit;
3. then messages that promise durability are sent, the rest of the committed entries applied, and
   ``advance`` called.

A single member is a cluster of one: the same driver, a transport with no peers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from flotilla.raft import (
    NO_LEADER,
    ConfChange,
    Entry,
    Message,
    ProposalDropped,
    RawNode,
    ReadState,
    Ready,
    Snapshot,
    SoftState,
)

from .storage import MemberStorage

__all__ = ["NoPeers", "RaftNode", "Transport"]

log = logging.getLogger("flotilla.etcd.raft")

# Below this moving average of the WAL write (fdatasync included), it runs on the event loop: handing it
# to a thread and back costs more (measured: ~0.1 ms fdatasync vs ~2 ms per thread round trip under load).
INLINE_WRITE_MAX_S = 0.001
INLINE_WRITE_MAX_ENTRIES = 2


class Transport(Protocol):
    """Delivers raft messages to peers; never blocks (queue, then send from its own tasks)."""

    def send(self, messages: list[Message]) -> None: ...
    def active_since(self, peer_id: int) -> float | None: ...


class NoPeers:
    """The transport of a single-member cluster: there is no one to send to."""

    def send(self, messages: list[Message]) -> None:
        if messages:
            log.debug("dropping %d messages: no peers", len(messages))

    def active_since(self, peer_id: int) -> float | None:
        return None


class Applier(Protocol):
    async def apply_snapshot(self, snapshot: Snapshot) -> None: ...
    def apply_entries(self, entries: list[Entry]) -> None: ...
    def on_soft_state(self, soft: SoftState) -> None: ...
    def on_read_state(self, read_state: ReadState) -> None: ...
    def on_ready_done(self) -> None: ...


class RaftNode:
    """Drives one ``RawNode``. ``propose`` and ``request_read_index`` are called from request handlers
    on the same event loop; ``run`` is the driver task."""

    def __init__(
        self,
        node: RawNode,
        storage: MemberStorage,
        transport: Transport,
        applier: Applier,
        tick_interval_s: float,
        on_fsync: Callable[[float], None] | None = None,
    ) -> None:
        self.node = node
        self.storage = storage
        self.transport = transport
        self.applier = applier
        self.tick_interval_s = tick_interval_s
        self._on_fsync = on_fsync
        self._disk_write_s = 0.0  # a moving average of write_ahead's own duration
        self._pending: list[bytes] = []
        self._read_contexts: list[bytes] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self.durable_index = storage.memory.last_index()
        self.applied_index = 0
        self.term = storage.memory.hard_state.term
        self.leader_id = NO_LEADER

    # --- inputs from request handlers -------------------------------------------------------------
    def propose(self, data: bytes) -> None:
        """Queue a proposal for the next batch. Proposals wait here while there is no leader; the
        caller's own timeout bounds that wait."""
        self._pending.append(data)
        self._wake.set()

    def request_read_index(self, context: bytes) -> None:
        self._read_contexts.append(context)
        self._wake.set()

    def step(self, message: Message) -> None:
        """A message from a peer (the transport's receiving side calls this)."""
        self.node.step(message)
        self._wake.set()

    def propose_conf_change(self, change: ConfChange) -> None:
        """Propose a membership change now (a leader must be known). Raises ProposalDropped when this
        member, leading, refuses it (another change in progress, a transfer under way)."""
        self.node.propose_conf_change(change)
        self._wake.set()

    def transfer_leadership(self, transferee: int) -> None:
        self.node.transfer_leadership(transferee)
        self._wake.set()

    def report_unreachable(self, peer_id: int) -> None:
        self.node.report_unreachable(peer_id)
        self._wake.set()

    def report_snapshot(self, peer_id: int, delivered: bool) -> None:
        self.node.report_snapshot(peer_id, delivered)
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    # --- the driver -------------------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._tick_loop())
            await self._ready_loop()
            self._stopping = True

    async def _tick_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.tick_interval_s)
            self.node.tick()
            self._wake.set()

    def _feed(self) -> None:
        """Hand queued proposals and read requests to raft, as one batch each."""
        if self._pending and self.leader_id != NO_LEADER:
            batch, self._pending = self._pending, []
            try:
                self.node.propose_entries(batch)
            except ProposalDropped as dropped:
                # A leadership transfer or removal is under way: keep the batch for the next leader.
                log.debug("proposals held back: %s", dropped)
                self._pending[:0] = batch
        if self._read_contexts and self.leader_id != NO_LEADER:
            contexts, self._read_contexts = self._read_contexts, []
            for context in contexts:
                self.node.read_index(context)

    async def _ready_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            self._feed()
            while self.node.has_ready() and not self._stopping:
                rd = self.node.ready()
                await self._handle(rd, loop)
                self.node.advance(rd)
                self._feed()
            self.applier.on_ready_done()

    async def _handle(self, rd: Ready, loop: asyncio.AbstractEventLoop) -> None:
        if rd.hard_state is not None:
            self.term = rd.hard_state.term
        if rd.soft_state is not None:
            self.leader_id = rd.soft_state.leader_id
            self.applier.on_soft_state(rd.soft_state)
        if rd.messages:
            self.transport.send(rd.messages)
        committed = rd.committed_entries
        if rd.must_sync():
            if (
                not rd.messages
                and len(rd.entries) <= INLINE_WRITE_MAX_ENTRIES
                and self._disk_write_s < INLINE_WRITE_MAX_S
            ):
                # A small batch, a fast disk, and no appends to followers in flight: waiting on the loop
                # costs less than handing the write to a thread and back. Big batches (many clients) go to
                # the thread, so the loop keeps reading requests for the next batch while the disk works;
                # so does a leader's write, so its appends reach the followers while its own disk works
                # (the transport sends from the loop).
                seconds = self._timed_write(rd)
            else:
                write = asyncio.ensure_future(asyncio.to_thread(self._timed_write, rd))
                # Apply what is already durable while the fsync runs.
                durable = [e for e in committed if e.index <= self.durable_index] if committed else []
                if durable:
                    self._apply(durable)
                    committed = committed[len(durable) :]
                seconds = await write
            self._disk_write_s += (seconds - self._disk_write_s) * 0.2
            if self._on_fsync is not None:
                self._on_fsync(seconds)
            self.storage.mirror(rd)
            if rd.entries:
                self.durable_index = rd.entries[-1].index
            if rd.snapshot is not None:
                self.durable_index = max(self.durable_index, rd.snapshot.index)
        elif rd.hard_state is not None:
            # Only the commit index moved: no fsync to wait for (it goes out with the next WAL write).
            self.storage.note_commit(rd.hard_state)
        if rd.messages_after_persist:
            self.transport.send(rd.messages_after_persist)
        if rd.snapshot is not None:
            await self.applier.apply_snapshot(rd.snapshot)
            self.applied_index = rd.snapshot.index
        if committed:
            self._apply(committed)
        for read_state in rd.read_states:
            self.applier.on_read_state(read_state)

    def _timed_write(self, rd: Ready) -> float:
        started = time.perf_counter()
        self.storage.write_ahead(rd)
        return time.perf_counter() - started

    def _apply(self, entries: list[Entry]) -> None:
        self.applier.apply_entries(entries)
        self.applied_index = entries[-1].index

"""A simulated member: a RawNode, its disk, a key-value state machine, and the Ready loop."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flotilla.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    EntryType,
    MemoryStorage,
    RawNode,
    Ready,
    StorageError,
)

if TYPE_CHECKING:
    from .simulation import Simulation


class StateMachine:
    """A key-value map fed by entries ``put <key> <value>``: each key holds its value and the index
    of the entry that wrote it (a duplicated proposal may write one value twice). ``digest`` covers
    every applied entry."""

    def __init__(self, applied: int = 0, digest: int = 0, kv: dict[bytes, tuple[bytes, int]] | None = None):
        self.applied = applied
        self.digest = digest
        self.kv: dict[bytes, tuple[bytes, int]] = kv or {}

    def encode(self) -> bytes:
        kv = {k.decode(): [v.decode(), i] for k, (v, i) in self.kv.items()}
        return json.dumps({"applied": self.applied, "digest": self.digest, "kv": kv}).encode()

    @classmethod
    def decode(cls, data: bytes) -> StateMachine:
        if not data:
            return cls()
        doc = json.loads(data)
        kv = {k.encode(): (v.encode(), i) for k, (v, i) in doc["kv"].items()}
        return cls(doc["applied"], doc["digest"], kv)


@dataclass
class PendingRead:
    key: bytes
    required: int  # the highest acknowledged write to key when the read began
    index: int = -1  # the read index, once confirmed


@dataclass
class SimNode:
    id: int
    sim: Simulation
    storage: MemoryStorage
    raw: RawNode = field(init=False)
    sm: StateMachine = field(init=False)
    alive: bool = False
    removed: bool = False
    incarnation: int = 0
    busy: bool = False  # a Ready is being persisted: inputs wait in the inbox
    inbox: list = field(default_factory=list)
    pending_ticks: int = 0
    seen: list[int] = field(default_factory=lambda: [0, 0, 0, -1])
    removed_ids: set[int] = field(default_factory=set)  # members this one applied the removal of
    reads: dict[bytes, PendingRead] = field(default_factory=dict)  # awaiting their ReadState
    confirmed_reads: list[PendingRead] = field(default_factory=list)  # awaiting their index's apply
    unsynced: Ready | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.sim.config
        self.incarnation += 1
        self.raw = RawNode(
            Config(
                id=self.id,
                rng=random.Random(f"{cfg.seed}-{self.id}-{self.incarnation}"),
                election_timeout_ticks=cfg.election_timeout_ticks,
                heartbeat_interval_ticks=cfg.heartbeat_interval_ticks,
                max_msg_bytes=cfg.max_msg_bytes,
                max_inflight_msgs=cfg.max_inflight_msgs,
                pre_vote=cfg.pre_vote,
                check_quorum=cfg.check_quorum,
                max_apply_bytes=cfg.max_apply_bytes,
                applied=self.storage.snapshot().index,
            ),
            self.storage,
        )
        snapshot = self.storage.snapshot()
        self.sm = StateMachine.decode(snapshot.data)
        self.sm.applied = snapshot.index  # the bootstrap snapshot has no data but covers index 1
        if snapshot.index:
            self.sim.checker.on_restore(self.id, snapshot.index, self.sm.digest)
        self.alive, self.busy, self.inbox, self.pending_ticks = True, False, [], 0
        self.seen = [0, 0, snapshot.index, -1]
        self.reads, self.confirmed_reads = {}, []
        self.unsynced = None
        self.sim.loop.call_later(self.sim.rng.randrange(cfg.tick_us), self._on_tick, self.incarnation)
        self._observe()

    def shut_down(self, incarnation: int | None = None) -> None:
        """A removed member stops for good (``incarnation``: only if still that one)."""
        if incarnation is not None and incarnation != self.incarnation:
            return
        self.removed, self.alive = True, False
        self.incarnation += 1

    def crash(self) -> None:
        """Stop now; an unsynced write survives only as a torn prefix, if at all."""
        if self.unsynced is not None and self.sim.rng.random() < self.sim.config.torn_write:
            self._persist_torn_prefix(self.unsynced)
        durable_term = max(self.storage.hard_state.term, self.storage.term(self.storage.last_index()))
        self.sim.checker.on_crash(self.id, self.incarnation, durable_term)
        self.alive = False
        self.unsynced = None
        self.busy = False
        self.inbox = []
        self.reads, self.confirmed_reads = {}, []
        self.incarnation += 1  # invalidates its scheduled ticks and disk completions

    def _persist_torn_prefix(self, rd: Ready) -> None:
        # A write-ahead log record sequence cut short: [snapshot] entries... [hard state]. Keeping
        # all of it is a write that completed just before the crash, with nothing sent or applied.
        records = ([rd.snapshot] if rd.snapshot is not None else []) + list(rd.entries)
        keep = self.sim.rng.randrange(len(records) + 2)
        kept = records[:keep]
        if kept and rd.snapshot is not None:
            self.storage.apply_snapshot(kept.pop(0))
        hard = rd.hard_state if keep > len(records) else None
        if kept or hard is not None:
            self._store_entries(kept, hard)

    # --- inputs ---------------------------------------------------------------------------------
    def deliver(self, m) -> None:
        if not self.alive:
            return
        if self.busy:
            self.inbox.append(m)
            return
        self.raw.step(m)
        self._observe()
        self._drain()

    def _on_tick(self, incarnation: int) -> None:
        if incarnation != self.incarnation or not self.alive:
            return
        self.sim.loop.call_later(self.sim.config.tick_us, self._on_tick, incarnation)
        if self.busy:
            self.pending_ticks += 1
            return
        self.raw.tick()
        self._observe()
        self._drain()

    def _observe(self) -> None:
        self.sim.checker.observe(self.id, self.incarnation, self.raw.raft, self.seen)

    # --- the Ready loop -------------------------------------------------------------------------
    def _drain(self) -> None:
        while not self.busy and self.alive:
            if self.inbox or self.pending_ticks:
                inbox, self.inbox = self.inbox, []
                for m in inbox:
                    self.raw.step(m)
                    self._observe()
                for _ in range(self.pending_ticks):
                    self.raw.tick()
                    self._observe()
                self.pending_ticks = 0
            if not self.raw.has_ready():
                return
            rd = self.raw.ready()
            self._observe()
            for m in rd.messages:
                self.sim.network.send(m)
            if rd.must_sync():
                self.busy = True
                self.unsynced = rd
                cfg = self.sim.config
                latency = self.sim.rng.randint(cfg.fsync_min_us, cfg.fsync_max_us)
                self.sim.loop.call_later(latency, self._on_synced, self.incarnation, rd)
                return
            self._complete(rd)

    def _on_synced(self, incarnation: int, rd: Ready) -> None:
        if incarnation != self.incarnation:
            return  # crashed while the write was in flight
        self.busy = False
        self.unsynced = None
        self._complete(rd)
        self._drain()

    def _store_entries(self, entries, hard) -> None:
        first = entries[0].index if entries else 0
        try:
            prev_term = self.storage.term(first - 1) if entries else 0
        except StorageError:
            prev_term = -1  # precedes our snapshot: unknown, skip the predecessor check
        self.storage.append(entries)
        if hard is not None:
            self.storage.set_hard_state(hard)
        if prev_term >= 0 or not entries:
            self.sim.checker.on_persisted(self.id, entries, prev_term, hard)
        else:
            self.sim.checker.on_persisted(self.id, entries[1:], entries[0].term, hard)

    def _complete(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            self.storage.apply_snapshot(rd.snapshot)
        self._store_entries(rd.entries, rd.hard_state)
        for m in rd.messages_after_persist:
            self.sim.network.send(m)
        if rd.snapshot is not None:
            self.sm = StateMachine.decode(rd.snapshot.data)
            self.sm.applied = rd.snapshot.index
            self.sim.checker.on_restore(self.id, rd.snapshot.index, self.sm.digest)
        for entry in rd.committed_entries:
            self._apply(entry)
            if not self.alive:
                return  # removed itself
        for rs in rd.read_states:
            read = self.reads.pop(rs.request_ctx, None)
            if read is not None:
                read.index = rs.index
                self.confirmed_reads.append(read)
        self.raw.advance(rd)
        self._observe()
        self._serve_reads()
        self._maybe_snapshot()

    def _apply(self, entry) -> None:
        sm = self.sm
        sm.digest = self.sim.checker.on_apply(self.id, sm.applied, sm.digest, entry)
        sm.applied = entry.index
        if entry.type == EntryType.CONF_CHANGE:
            change = ConfChange.decode(entry.data)
            self.raw.apply_conf_change(change)
            if change.type == ConfChangeType.REMOVE_NODE:
                self.removed_ids.add(change.node_id)
            self.sim.on_conf_change_applied(self, change)
            if change.type == ConfChangeType.REMOVE_NODE and change.node_id == self.id:
                self.removed = True
                self.sim.reap_when_peers_know(self)
        elif entry.data.startswith(b"put "):
            _, key, value = entry.data.split(b" ", 2)
            sm.kv[key] = (value, entry.index)
            self.sim.on_write_applied(self, key, value, entry.index)

    def _serve_reads(self) -> None:
        if not self.confirmed_reads:
            return
        waiting = []
        for read in self.confirmed_reads:
            if read.index <= self.sm.applied:
                _, written_at = self.sm.kv.get(read.key, (b"", 0))
                self.sim.checker.read_served(self.id, read.key, written_at, read.required, read.index)
            else:
                waiting.append(read)
        self.confirmed_reads = waiting

    def _maybe_snapshot(self) -> None:
        every = self.sim.config.snapshot_every
        storage = self.storage
        applied = self.sm.applied
        if applied - storage.first_index() < every or applied > storage.last_index():
            return
        storage.create_snapshot(applied, self.raw.raft.conf_state(), self.sm.encode())
        keep = self.sim.rng.randrange(0, 4)  # sometimes keep a few entries behind the snapshot
        if applied - keep >= storage.first_index():
            storage.compact(applied - keep)

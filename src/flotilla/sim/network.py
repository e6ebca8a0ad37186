"""A simulated network: per-link delay, loss, duplication, reordering, partitions and clogging."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from flotilla.raft import Message, MessageType

from .events import EventLoop


class Network:
    """Delivers raft messages between member ids on virtual time.

    A *blocked* link drops everything (a partition; blocking one direction makes it asymmetric). A
    *clogged* link holds messages and releases them when unclogged (FoundationDB's swizzle-clogging).
    Reordering comes from independent random delays (until ``heal``: then links are FIFO, like TCP;
    raft's pipelined appends make progress under reordering but need order to be fast).
    """

    def __init__(
        self,
        loop: EventLoop,
        rng: random.Random,
        deliver: Callable[[Message], None],
        report_snapshot: Callable[[Message, bool], None],
        delay_us: tuple[int, int],
        loss: float,
        duplicate: float,
        spike: float,
    ) -> None:
        self._loop = loop
        self._rng = rng
        self._deliver = deliver
        self._report_snapshot = report_snapshot
        self.delay_us = delay_us
        self.loss = loss
        self.duplicate = duplicate
        self.spike = spike
        self.reorder = True  # False: each link delivers in order, as a TCP stream does
        self._last_at: dict[tuple[int, int], int] = {}
        self.blocked: set[tuple[int, int]] = set()
        self.clogged: set[tuple[int, int]] = set()
        self._held: dict[tuple[int, int], list[Message]] = {}
        self.sent = 0
        self.dropped = 0

    def send(self, m: Message) -> None:
        self.sent += 1
        link = (m.sender, m.to)
        if link in self.blocked or (self.loss and self._rng.random() < self.loss):
            self.dropped += 1
            if m.type == MessageType.SNAP:
                # The transport notices a failed snapshot stream (etcd's rafthttp reports it).
                self._loop.call_later(self.delay_us[1], self._report_snapshot, m, False)
            return
        if link in self.clogged:
            self._held.setdefault(link, []).append(m)
            return
        self._schedule(m)
        if self.duplicate and self._rng.random() < self.duplicate:
            self._schedule(dataclasses.replace(m))

    def _schedule(self, m: Message) -> None:
        low, high = self.delay_us
        delay = self._rng.randint(low, high)
        if self.spike and self._rng.random() < self.spike:
            delay += self._rng.randint(0, 20 * high)
        when = self._loop.now_us + delay
        if not self.reorder:
            link = (m.sender, m.to)
            when = max(when, self._last_at.get(link, 0))
            self._last_at[link] = when
        self._loop.call_at(when, self._deliver, m)
        if m.type == MessageType.SNAP:
            self._loop.call_at(when + delay, self._report_snapshot, m, True)

    # --- faults ---------------------------------------------------------------------------------
    def partition(self, side_a: set[int], side_b: set[int], one_way: bool = False) -> None:
        """Block a→b links (and b→a unless ``one_way``)."""
        for a in side_a:
            for b in side_b:
                self.blocked.add((a, b))
                if not one_way:
                    self.blocked.add((b, a))

    def unblock(self, links: set[tuple[int, int]]) -> None:
        self.blocked -= links

    def clog(self, link: tuple[int, int]) -> None:
        self.clogged.add(link)

    def unclog(self, link: tuple[int, int]) -> None:
        self.clogged.discard(link)
        for m in self._held.pop(link, []):
            self._schedule(m)

    def heal(self, max_delay_us: int) -> None:
        """Everything reliable again: no partitions, clogs, loss, duplication, spikes or reordering,
        and no message slower than ``max_delay_us`` (raft's liveness needs the broadcast time well
        below the election timeout, thesis §3.7: with 60 ms hops and 100 ms timeouts, a stale
        candidate without pre-vote can keep colliding with the one that should win)."""
        self.delay_us = (min(self.delay_us[0], max_delay_us), min(self.delay_us[1], max_delay_us))
        self.reorder = False
        self.blocked.clear()
        for link in list(self.clogged):
            self.unclog(link)
        self.loss = self.duplicate = self.spike = 0.0

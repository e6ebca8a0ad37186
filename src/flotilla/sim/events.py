"""Virtual time: a heap of scheduled callbacks, run in (time, insertion) order."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class EventLoop:
    """A deterministic event queue. Time is an integer number of virtual microseconds."""

    def __init__(self) -> None:
        self.now_us = 0
        self._heap: list[tuple[int, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = 0
        self.events_run = 0

    def call_at(self, when_us: int, fn: Callable[..., Any], *args: Any) -> None:
        assert when_us >= self.now_us, "cannot schedule in the past"
        self._seq += 1
        heapq.heappush(self._heap, (when_us, self._seq, fn, args))

    def call_later(self, delay_us: int, fn: Callable[..., Any], *args: Any) -> None:
        self.call_at(self.now_us + delay_us, fn, *args)

    def run_one(self) -> bool:
        if not self._heap:
            return False
        when, _, fn, args = heapq.heappop(self._heap)
        self.now_us = when
        self.events_run += 1
        fn(*args)
        return True

    def next_time_us(self) -> int | None:
        return self._heap[0][0] if self._heap else None

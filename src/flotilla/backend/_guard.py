"""A shared/exclusive guard: many calls share the open database, ``defragment``/``close`` take it alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SharedExclusiveGuard:
    """Shared holders run together; an exclusive holder runs alone. A waiting exclusive request stops
    new shared holders from entering, so a stream of readers cannot starve defragment."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0
        self._exclusive = False
        self._exclusive_waiting = 0
        self._mine = threading.local()

    def _holds(self) -> list[int]:
        holds = getattr(self._mine, "holds", None)
        if holds is None:
            holds = self._mine.holds = [0]
        return holds

    @contextmanager
    def shared(self) -> Iterator[None]:
        # The count of the entering thread, kept by reference: a scan generator may finish in another thread.
        mine = self._holds()
        held = mine[0]
        with self._cond:
            # A thread that already holds the guard re-enters at once: waiting for a pending exclusive
            # request would deadlock on its own shared hold.
            while self._exclusive or (self._exclusive_waiting and not held):
                self._cond.wait()
            self._shared += 1
        mine[0] += 1
        try:
            yield
        finally:
            mine[0] -= 1
            with self._cond:
                self._shared -= 1
                if self._shared == 0:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        assert not self._holds()[0], (
            "this thread holds an unfinished scan or call of the backend; finish or close it first"
        )
        with self._cond:
            self._exclusive_waiting += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._exclusive_waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()

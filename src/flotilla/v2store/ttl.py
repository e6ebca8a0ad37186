"""Nodes with an expiry, soonest first (etcd's ttl_key_heap.go)."""

from __future__ import annotations

import heapq

from .node import _Node


class _TtlHeap:
    """A min-heap of nodes by expiry. Equal expiries leave in the order they were pushed, so every
    member expires them in the same order. Removal marks the entry dead; dead entries are skipped."""

    def __init__(self) -> None:
        self._heap: list[list] = []  # [expire_ns, sequence, node or None]
        self._entries: dict[_Node, list] = {}
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, node: _Node) -> None:
        assert node.expire_ns is not None and node not in self._entries
        self._sequence += 1
        entry = [node.expire_ns, self._sequence, node]
        self._entries[node] = entry
        heapq.heappush(self._heap, entry)

    def remove(self, node: _Node) -> None:
        entry = self._entries.pop(node, None)
        if entry is not None:
            entry[2] = None

    def update(self, node: _Node) -> None:
        """Re-place ``node`` after its expiry changed (only if it is in the heap, as etcd)."""
        if node in self._entries:
            self.remove(node)
            self.push(node)

    def top(self) -> _Node | None:
        while self._heap and self._heap[0][2] is None:
            heapq.heappop(self._heap)
        return self._heap[0][2] if self._heap else None

    def pop(self) -> _Node | None:
        node = self.top()
        if node is not None:
            heapq.heappop(self._heap)
            del self._entries[node]
        return node

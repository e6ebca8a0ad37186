"""Events and the event history (etcd's event.go, event_history.go and event_queue.go)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import ErrorCode, V2Error
from .node import NodeExtern

GET = "get"
CREATE = "create"
SET = "set"
UPDATE = "update"
DELETE = "delete"
COMPARE_AND_SWAP = "compareAndSwap"
COMPARE_AND_DELETE = "compareAndDelete"
EXPIRE = "expire"


@dataclass(eq=False)
class Event:
    """The result of one store call, and what watchers receive. Treat as read-only once returned: the
    same object sits in the history and in every notified watcher's ``pending``.

    ``etcd_index`` is the store index the response reports (``X-Etcd-Index``). ``refresh`` marks a TTL
    refresh: kept in the history for ``since_index`` watches to skip, never sent to live watchers, and not
    part of the JSON (etcd 3.4 does not show it). ``internal`` marks a placeholder for a write outside the
    user key space (``V2Store.advance_index``) that no watch can match.
    """

    action: str
    node: NodeExtern
    prev_node: NodeExtern | None = None
    etcd_index: int = 0
    refresh: bool = False
    internal: bool = False

    def index(self) -> int:
        """The index watchers compare with their ``since_index``: the event node's modifiedIndex."""
        return self.node.modified_index

    @property
    def is_created(self) -> bool:
        """True when the event made a new node (etcd answers 201 Created): create, or a set of a new key."""
        return self.action == CREATE or (self.action == SET and self.prev_node is None)

    def to_json(self) -> dict:
        """etcd's response body: action, node, prevNode (only when there was one)."""
        out: dict = {"action": self.action, "node": self.node.to_json()}
        if self.prev_node is not None:
            out["prevNode"] = self.prev_node.to_json()
        return out

    def with_etcd_index(self, etcd_index: int) -> Event:
        """A copy reporting another store index (a history event handed to a new watch)."""
        return replace(self, etcd_index=etcd_index)


class _EventHistory:
    """The last ``capacity`` events, one per store index, in a ring.

    Store indexes are consecutive and every index produces exactly one event (refreshes and internal
    writes included), so the event with index ``i`` sits at offset ``i - start_index`` from the front.
    """

    def __init__(self, capacity: int, *, next_index: int = 0) -> None:
        assert capacity > 0
        self.capacity = capacity
        self._events: list[Event | None] = [None] * capacity
        self._front = 0
        self._size = 0
        # An empty history taken over at index N (a restore) answers 401 below N+1, as etcd would once
        # those events had left its ring; a fresh store (N=0) answers from 0, as etcd's zero StartIndex.
        self.start_index = next_index
        self.last_index = next_index - 1 if next_index else 0

    def add(self, event: Event) -> None:
        back = (self._front + self._size) % self.capacity
        self._events[back] = event
        if self._size == self.capacity:
            self._front = (self._front + 1) % self.capacity
        else:
            self._size += 1
        self.last_index = event.index()
        front = self._events[self._front]
        assert front is not None
        self.start_index = front.index()

    def scan(self, key: str, recursive: bool, index: int, current_index: int) -> Event | None:
        """The first event at or after ``index`` that a watch on ``key`` sees, None if none yet.

        Raises EVENT_INDEX_CLEARED when ``index`` is older than the oldest event kept. As etcd's scan,
        hidden keys are not filtered here (a live watch would not see them), refreshes are skipped, and a
        deleted or expired directory matches every watch below it.
        """
        if index < self.start_index:
            raise V2Error(
                ErrorCode.EVENT_INDEX_CLEARED,
                f"the requested history has been cleared [{self.start_index}/{index}]",
                current_index,
                oldest_index=self.start_index,
            )
        if index > self.last_index or self._size == 0:
            return None
        prefix = key if key.endswith("/") else key + "/"
        for offset in range(index - self.start_index, self._size):
            event = self._events[(self._front + offset) % self.capacity]
            assert event is not None
            if event.refresh or event.internal:
                continue
            event_key = event.node.key
            if event_key == key or (recursive and event_key.startswith(prefix)):
                return event
            prev = event.prev_node
            if (
                event.action in (DELETE, EXPIRE)
                and prev is not None
                and prev.dir
                and key.startswith(prev.key)
            ):
                return event
        return None

    def events(self) -> list[Event]:
        """The kept events, oldest first."""
        out = []
        for offset in range(self._size):
            event = self._events[(self._front + offset) % self.capacity]
            assert event is not None
            out.append(event)
        return out

"""Watchers and the hub that notifies them (etcd's watcher.go and watcher_hub.go)."""

from __future__ import annotations

import collections
from collections.abc import Callable

from .event import Event
from .paths import clean_path


class Watcher:
    """What one client watch receives.

    The core appends matching events to ``pending`` and calls ``on_event()`` (set by the I/O layer; may
    be None) after each append. A non-stream watcher receives one event and is removed from the hub; a
    stream watcher stays until ``V2Store.unwatch(w)``. ``removed`` is True once it will receive nothing
    more: the I/O layer drains ``pending`` and then ends the response.

    A watcher whose event was already in the history comes back from ``V2Store.watch`` with that one
    event in ``pending`` and ``removed`` True, stream or not: etcd never registers it, so a stream watch
    resumed from the history gets that one event only. A watcher that falls ``buffer`` events behind is
    dropped (``removed`` True, ``on_event()`` called), as etcd drops a watcher whose channel is full.
    ``start_index`` is the store index when the watch began (the watch response's ``X-Etcd-Index``).
    """

    def __init__(
        self, key: str, *, recursive: bool, stream: bool, since_index: int, start_index: int, buffer: int
    ) -> None:
        self.key = key
        self.recursive = recursive
        self.stream = stream
        self.since_index = since_index
        self.start_index = start_index
        self.pending: collections.deque[Event] = collections.deque()
        self.on_event: Callable[[], None] | None = None
        self.removed = False
        self._buffer = buffer

    def __repr__(self) -> str:
        return (
            f"Watcher(key={self.key!r}, recursive={self.recursive}, stream={self.stream}, "
            f"since_index={self.since_index}, pending={len(self.pending)}, removed={self.removed})"
        )

    def _signal(self) -> None:
        if self.on_event is not None:
            self.on_event()


class _WatcherHub:
    """Watchers by the cleaned key they watch. Notification walks the event key's ancestors."""

    def __init__(self) -> None:
        self._by_key: dict[str, list[Watcher]] = {}
        self.count = 0

    def add(self, watcher: Watcher) -> None:
        self._by_key.setdefault(watcher.key, []).append(watcher)
        self.count += 1

    def remove(self, watcher: Watcher) -> None:
        """Take ``watcher`` out of the hub (once) and mark it removed."""
        if watcher.removed:
            return
        watcher.removed = True
        watchers = self._by_key.get(watcher.key)
        if watchers is not None and watcher in watchers:
            watchers.remove(watcher)
            self.count -= 1
            if not watchers:
                del self._by_key[watcher.key]

    def notify(self, event: Event) -> None:
        """Offer ``event`` to the watchers of its key and of every ancestor directory, root first."""
        path = ""
        self.notify_path(event, "/", deleted=False)
        for segment in event.node.key.split("/"):
            if not segment:
                continue
            path = f"{path}/{segment}"
            self.notify_path(event, path, deleted=False)

    def notify_path(self, event: Event, path: str, *, deleted: bool) -> None:
        """Offer ``event`` to the watchers of ``path``. ``deleted``: ``path`` is a node the event removed
        (a deleted directory's descendants), which every watcher of it hears about, recursive or not."""
        watchers = self._by_key.get(path)
        if not watchers:
            return
        original = event.node.key == path
        if not original and _is_hidden(path, event.node.key):
            return
        for watcher in list(watchers):
            if watcher.removed:
                continue
            if not (watcher.recursive or original or deleted) or event.index() < watcher.since_index:
                continue
            if len(watcher.pending) >= watcher._buffer:
                # etcd: a full channel drops the watcher instead of blocking the apply loop.
                self.remove(watcher)
                watcher._signal()
                continue
            watcher.pending.append(event)
            if not watcher.stream:
                self.remove(watcher)
            watcher._signal()

    def clear(self) -> list[Watcher]:
        """Remove every watcher; returns them."""
        cleared = [w for watchers in self._by_key.values() for w in watchers]
        for watcher in cleared:
            self.remove(watcher)
        return cleared


def _is_hidden(watch_path: str, key_path: str) -> bool:
    """True when ``key_path`` lies under a hidden name as seen from the watch at ``watch_path``."""
    # A deleted directory notifies watchers deeper than its own key; those are never hidden.
    if len(watch_path) > len(key_path):
        return False
    after = "/" + key_path[len(watch_path) :]
    return "/_" in clean_path(after)

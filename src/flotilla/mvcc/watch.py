"""The watch hub of the v3 keyspace (etcd's ``mvcc/watchable_store.go`` and ``watcher_group.go``), a core.

A watcher is in one of three states:

* **synced** — it has seen everything up to the last write; ``notify`` pushes each new write to it.
* **unsynced** — it started in the past, or its stream was slow (``desync``, etcd's "victims"); ``sync``
  moves it forward from the keyspace's history in bounded batches and marks it synced once caught up.
* **done** — cancelled, or cancelled by compaction (``compacted`` is then True; delivered once).

No event is lost or duplicated across the sync boundary: ``next_revision`` is the next revision a watcher
still needs, and ``notify`` skips watchers whose ``next_revision`` is past the notified revision — the case
of a watcher that caught up from history after a write was committed but before it was notified.

Contract with the member: call ``notify`` with the events of each write txn (one revision) after the store
committed it, in revision order; deliver what ``notify`` and ``sync`` return, in order; call ``sync``
while ``unsynced_count()`` is non-zero.
"""

from __future__ import annotations

import itertools
from typing import Protocol

from flotilla.mvcc.errors import CompactedError
from flotilla.mvcc.types import Event, EventType

_SYNCED, _UNSYNCED, _DONE = "synced", "unsynced", "done"


class HistorySource(Protocol):
    """What the hub reads from the keyspace; ``flotilla.mvcc.store.KeyValueStore`` satisfies it."""

    revision: int
    compact_revision: int

    def events(
        self,
        start_revision: int,
        key: bytes = b"",
        range_end: bytes = b"",
        *,
        end_revision: int = 0,
        limit: int = 0,
    ) -> list[Event]:
        """Changes with ``start_revision <= mod_revision`` (``<= end_revision`` if non-zero) on keys in the
        range, in revision order, at most ``limit`` (0 = all), carrying prev_kv. CompactedError if
        ``start_revision < compact_revision``."""
        ...


class Watcher:
    """One watch. Hashed and compared by identity. The member reads the fields; only the hub writes them.

    ``key``/``range_end``: as etcd — ``range_end`` b"" watches exactly ``key``, b"\\0" every key >= ``key``,
    otherwise ``[key, range_end)``. ``filters``: event types NOT delivered (etcd's NOPUT/NODELETE).
    ``next_revision``: the next revision this watcher needs. ``compacted``/``compact_revision``: set when
    the history it needed was compacted away; the watch is then over. ``tag``: the member's, opaque.
    """

    __slots__ = (
        "key",
        "range_end",
        "prev_kv",
        "filters",
        "next_revision",
        "compacted",
        "compact_revision",
        "tag",
        "_state",
    )

    def __init__(
        self,
        key: bytes,
        range_end: bytes,
        next_revision: int,
        prev_kv: bool,
        filters: frozenset[EventType],
        tag: object,
    ) -> None:
        self.key = key
        self.range_end = range_end
        self.prev_kv = prev_kv
        self.filters = filters
        self.next_revision = next_revision
        self.compacted = False
        self.compact_revision = 0
        self.tag = tag
        self._state = _DONE

    @property
    def synced(self) -> bool:
        return self._state == _SYNCED

    @property
    def active(self) -> bool:
        """Registered with the hub: neither cancelled nor compacted."""
        return self._state != _DONE

    def contains(self, key: bytes) -> bool:
        """Whether a change of ``key`` concerns this watcher."""
        end = self.range_end
        if not end:
            return key == self.key
        if end == b"\0":
            return key >= self.key
        return self.key <= key < end

    def _shape(self, events: list[Event]) -> list[Event]:
        # Filtered types go; prev_kv goes unless asked for (it costs bandwidth the client did not want).
        if self.filters:
            events = [e for e in events if e.type not in self.filters]
        if not self.prev_kv:
            events = [e._replace(prev_kv=None) if e.prev_kv is not None else e for e in events]
        return events

    def __repr__(self) -> str:
        return (
            f"Watcher(key={self.key!r}, range_end={self.range_end!r}, next_revision={self.next_revision}, "
            f"state={self._state}, tag={self.tag!r})"
        )


Delivery = tuple[Watcher, list[Event]]


class WatchHub:
    """Every watcher of one keyspace, and the routing of its changes to them. Not thread-safe.

    ``notified_revision`` is the revision of the last ``notify`` (the history's revision at creation):
    synced watchers have been given everything up to it, which makes it the revision to report in
    progress notifications.
    """

    def __init__(self, history: HistorySource) -> None:
        self._history = history
        self.notified_revision = history.revision
        # Synced single-key watchers by key, so a write finds its watchers in O(1); range watchers are
        # scanned. Dicts as ordered sets keep delivery order deterministic.
        self._by_key: dict[bytes, dict[Watcher, None]] = {}
        self._ranges: dict[Watcher, None] = {}
        self._unsynced: dict[Watcher, None] = {}
        self._synced_count = 0

    def add(
        self,
        key: bytes,
        range_end: bytes = b"",
        start_revision: int = 0,
        *,
        prev_kv: bool = False,
        filters: frozenset[EventType] = frozenset(),
        tag: object = None,
    ) -> Watcher:
        """Register a watch. ``start_revision`` 0 (or negative): changes after the current revision. A
        start beyond the current revision: synced, it waits until then. A start below the compaction
        point: the watcher comes back with ``compacted`` set and is not registered (the member cancels it
        with ``compact_revision``, as etcd). Otherwise it catches up from history through ``sync``."""
        history = self._history
        current = history.revision
        watcher = Watcher(key, range_end, max(start_revision, current + 1), prev_kv, frozenset(filters), tag)
        if 0 < start_revision <= current:
            if start_revision < history.compact_revision:
                watcher.compacted = True
                watcher.compact_revision = history.compact_revision
                return watcher
            watcher.next_revision = start_revision
            self._unsynced[watcher] = None
            watcher._state = _UNSYNCED
        else:
            self._add_synced(watcher)
        return watcher

    def cancel(self, watcher: Watcher) -> None:
        """Unregister the watcher; a no-op when it is not registered."""
        if watcher._state == _SYNCED:
            self._remove_synced(watcher)
        elif watcher._state == _UNSYNCED:
            del self._unsynced[watcher]
        watcher._state = _DONE

    def notify(self, events: list[Event]) -> list[Delivery]:
        """Route the events of one write txn (one revision, in order) to the synced watchers whose range
        contains the key: ``(watcher, events)`` for each watcher left with events after its filters, prev_kv
        stripped unless it asked. O(events x (watchers of the key + range watchers))."""
        if not events:
            return []
        revision = events[0].kv.mod_revision
        if revision > self.notified_revision:
            self.notified_revision = revision
        by_key, ranges = self._by_key, self._ranges
        if not by_key and not ranges:
            return []  # the common case on a busy member: nobody watches
        # Each event with its prev_kv stripped, made once however many watchers get it.
        bare = [e._replace(prev_kv=None) if e.prev_kv is not None else e for e in events]
        matched: dict[Watcher, list[int]] = {}
        for index, event in enumerate(events):
            key = event.kv.key
            for watcher in by_key.get(key, ()):
                matched.setdefault(watcher, []).append(index)
            for watcher in ranges:
                if watcher.contains(key):
                    matched.setdefault(watcher, []).append(index)
        deliveries: list[Delivery] = []
        for watcher, indexes in matched.items():
            if watcher.next_revision > revision:
                continue  # caught up from history past this revision already, or starts in the future
            watcher.next_revision = revision + 1
            source = events if watcher.prev_kv else bare
            evs = [source[i] for i in indexes]
            if watcher.filters:
                evs = [e for e in evs if e.type not in watcher.filters]
            if evs:
                deliveries.append((watcher, evs))
        return deliveries

    def sync(self, max_events: int = 1000, *, max_watchers: int = 512) -> list[Delivery]:
        """Move up to ``max_watchers`` unsynced watchers forward from history: for each, the next batch of
        at most ``max_events`` events in whole revisions (more only when one revision alone is larger),
        shaped as in ``notify``. A watcher that caught up becomes synced; one that did not goes to the back
        of the queue, so a far-behind watcher cannot starve the others. A watcher whose ``next_revision``
        fell below the compaction point comes back once as ``(watcher, [])`` with ``compacted`` set and
        is removed."""
        assert max_events > 0 and max_watchers > 0
        deliveries: list[Delivery] = []
        for watcher in list(itertools.islice(self._unsynced, max_watchers)):
            try:
                events, caught_up = self._catch_up(watcher, max_events)
            except CompactedError as error:
                del self._unsynced[watcher]
                watcher._state = _DONE
                watcher.compacted = True
                watcher.compact_revision = error.compact_revision
                deliveries.append((watcher, []))
                continue
            del self._unsynced[watcher]
            if caught_up:
                self._add_synced(watcher)
            else:
                self._unsynced[watcher] = None  # to the back of the queue
            shaped = watcher._shape(events)
            if shaped:
                deliveries.append((watcher, shaped))
        return deliveries

    def desync(self, watcher: Watcher, resume_revision: int | None = None) -> None:
        """The watcher's stream is slow: stop pushing to it; ``sync`` resumes it later. It resumes after
        what it was last given, or from ``resume_revision`` when the member could not deliver a batch
        (pass the revision of that batch's first event). A no-op for a cancelled watcher."""
        if watcher._state == _SYNCED:
            self._remove_synced(watcher)
            if resume_revision is None:
                # A synced watcher has been given everything matching up to notified_revision, even if
                # nothing matched (then its own next_revision lags behind).
                resume_revision = max(watcher.next_revision, self.notified_revision + 1)
            watcher.next_revision = resume_revision
            self._unsynced[watcher] = None
            watcher._state = _UNSYNCED
        elif watcher._state == _UNSYNCED and resume_revision is not None:
            watcher.next_revision = min(watcher.next_revision, resume_revision)

    def replace_history(self, history: HistorySource) -> None:
        """The keyspace was replaced wholesale (a follower installed its leader's snapshot): every watcher
        resumes after what it was given, from the new history, through ``sync`` (etcd moves them all to
        unsynced)."""
        for watcher in self.synced_watchers():
            self.desync(watcher)
        self._history = history
        self.notified_revision = max(self.notified_revision, history.revision)

    def unsynced_count(self) -> int:
        return len(self._unsynced)

    def synced_watchers(self) -> list[Watcher]:
        """The synced watchers (single-key first, then ranges), for progress notifications."""
        found = [w for group in self._by_key.values() for w in group]
        found.extend(self._ranges)
        return found

    def __len__(self) -> int:
        """Registered watchers (etcd_debugging_mvcc_watcher_total)."""
        return self._synced_count + len(self._unsynced)

    # --- private ---------------------------------------------------------------------------------------
    def _catch_up(self, watcher: Watcher, max_events: int) -> tuple[list[Event], bool]:
        """The next batch of whole revisions for ``watcher``, advancing its ``next_revision``; and whether
        it has now seen the whole history. CompactedError when its history is gone."""
        history = self._history
        start = watcher.next_revision
        if start < history.compact_revision:
            raise CompactedError(start, history.compact_revision)
        current = history.revision
        if start > current:
            return [], True
        key, end = watcher.key, watcher.range_end
        # One more than the budget tells whether the history goes on; the last revision returned may be
        # cut short by the limit, so it is left for the next batch.
        events = history.events(start, key, end, end_revision=current, limit=max_events + 1)
        if len(events) <= max_events:
            watcher.next_revision = current + 1
            return events, True
        cut_revision = events[max_events].kv.mod_revision
        cut = max_events
        while cut > 0 and events[cut - 1].kv.mod_revision == cut_revision:
            cut -= 1
        if cut:
            del events[cut:]
            watcher.next_revision = cut_revision
        else:
            # One revision bigger than the budget: deliver it whole rather than split a transaction.
            events = history.events(start, key, end, end_revision=cut_revision)
            watcher.next_revision = cut_revision + 1
        return events, False

    def _add_synced(self, watcher: Watcher) -> None:
        if watcher.range_end:
            self._ranges[watcher] = None
        else:
            self._by_key.setdefault(watcher.key, {})[watcher] = None
        watcher._state = _SYNCED
        self._synced_count += 1

    def _remove_synced(self, watcher: Watcher) -> None:
        if watcher.range_end:
            del self._ranges[watcher]
        else:
            group = self._by_key[watcher.key]
            del group[watcher]
            if not group:
                del self._by_key[watcher.key]
        self._synced_count -= 1

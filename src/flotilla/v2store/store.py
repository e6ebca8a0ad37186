"""The v2 key tree: etcd 3.4's v2store as a deterministic core.

Contract: the store keeps its own index (etcd's CurrentIndex), +1 per successful mutation and per
expired node; every member applying the same calls in the same order with the same arguments reaches
the same tree, index, history and counters. Time enters only as arguments: ``now_ns`` (Unix nanoseconds)
computes the ``ttl`` shown in responses, ``expire_ns`` is an absolute expiry (None = permanent) and
``delete_expired(now_ns)`` removes what has expired. Failures raise ``V2Error`` carrying etcd's code,
cause and index. Watchers are notified synchronously inside the mutating call (see ``Watcher``).
"""

from __future__ import annotations

from .errors import ErrorCode, V2Error
from .event import (
    COMPARE_AND_DELETE,
    COMPARE_AND_SWAP,
    CREATE,
    DELETE,
    EXPIRE,
    GET,
    SET,
    UPDATE,
    Event,
    _EventHistory,
)
from .node import NodeExtern, _Node
from .paths import clean_path, split_path
from .snapshot import decode_state, encode_state
from .stats import StoreStats
from .ttl import _TtlHeap
from .watcher import Watcher, _WatcherHub

# etcd treats expiry times before 2000-01-01T00:00:00Z given to set/create as "no expiry" (a zero
# time.Time that went through JavaScript); update and compareAndSwap take them as they are.
_MIN_EXPIRE_NS = 946_684_800 * 1_000_000_000

_WATCHER_BUFFER = 100  # etcd's watcher channel capacity


class V2Store:
    """etcd's v2 key tree with its event history, watchers and counters."""

    def __init__(self, history_size: int = 1000, *, watcher_buffer: int = _WATCHER_BUFFER) -> None:
        """``history_size``: events kept for ``since_index`` watches. ``watcher_buffer``: undelivered
        events a watcher may hold before it is dropped (etcd: 100)."""
        self.index = 0
        self.stats = StoreStats()
        self._root = _Node("/", 0, None, None, is_dir=True)
        self._ttl = _TtlHeap()
        self._history = _EventHistory(history_size)
        self._hub = _WatcherHub()
        self._history_size = history_size
        self._watcher_buffer = watcher_buffer

    # ----------------------------------------------------------------- reads

    def get(self, path: str, *, recursive: bool = False, sorted: bool = False, now_ns: int) -> Event:
        """The node at ``path``; a directory lists its visible children (nested ones when recursive),
        sorted by key at every level when ``sorted``."""
        with _Counting(self.stats, "gets"):
            node = self._internal_get(clean_path(path))
            extern = node.repr(False, False, now_ns)
            if node.is_dir:
                extern.nodes = node.listing(recursive, sorted, now_ns)
            return Event(GET, extern, etcd_index=self.index)

    def has_ttl_keys(self) -> bool:
        return len(self._ttl) > 0

    # ----------------------------------------------------------------- writes

    def set(
        self,
        path: str,
        *,
        dir: bool = False,
        value: str = "",
        expire_ns: int | None = None,
        refresh: bool = False,
        now_ns: int,
    ) -> Event:
        """Create or replace the node (a replaced file's createdIndex resets); a directory in the way is
        NOT_FILE. ``refresh``: keep the existing value, set the new expiry, tell no live watcher."""
        with _Counting(self.stats, "sets"):
            path = clean_path(path)
            existing: _Node | None = None
            try:
                existing = self._internal_get(path)
            except V2Error as err:
                if err.code != ErrorCode.KEY_NOT_FOUND or refresh:
                    raise
            if refresh:
                assert existing is not None
                value = existing.value
            event = self._internal_create(path, dir, value, expire_ns, SET, replace=True, now_ns=now_ns)
            self._publish(event, refresh)
            return event

    def create(
        self,
        path: str,
        *,
        dir: bool = False,
        value: str = "",
        unique: bool = False,
        expire_ns: int | None = None,
        now_ns: int,
    ) -> Event:
        """Create the node, failing with NODE_EXIST if it exists. ``unique``: create a child of ``path``
        named by the new index, zero-padded to 20 digits (POST's in-order keys)."""
        with _Counting(self.stats, "create"):
            if unique:
                path = f"{path}/{self.index + 1:020d}"
            event = self._internal_create(
                clean_path(path), dir, value, expire_ns, CREATE, replace=False, now_ns=now_ns
            )
            self._publish(event, refresh=False)
            return event

    def update(
        self,
        path: str,
        *,
        value: str = "",
        expire_ns: int | None = None,
        refresh: bool = False,
        now_ns: int,
    ) -> Event:
        """Change an existing node's value and expiry (createdIndex kept). A directory takes only an
        expiry: a non-empty value is NOT_FILE, and its own modifiedIndex stays as it was (etcd)."""
        with _Counting(self.stats, "update"):
            path = clean_path(path)
            if path == "/":
                raise _slip(V2Error(ErrorCode.ROOT_RONLY, "/", self.index))
            node = self._internal_get(path)
            if node.is_dir and value:
                raise _slip(V2Error(ErrorCode.NOT_FILE, path, self.index))
            if refresh:
                value = node.value
            next_index = self.index + 1
            prev = node.repr(False, False, now_ns)
            if not node.is_dir:
                node.value = value
                node.modified_index = next_index
            self._update_ttl(node, expire_ns)
            expiration, ttl = node.expiration_and_ttl(now_ns)
            extern = NodeExtern(
                key=path,
                value=None if node.is_dir else value,
                dir=node.is_dir,
                expiration_ns=expiration,
                ttl=ttl,
                modified_index=next_index,
                created_index=node.created_index,
            )
            event = Event(UPDATE, extern, prev, etcd_index=next_index)
            self.index = next_index
            self._publish(event, refresh)
            return event

    def compare_and_swap(
        self,
        path: str,
        *,
        prev_value: str = "",
        prev_index: int = 0,
        value: str = "",
        expire_ns: int | None = None,
        refresh: bool = False,
        now_ns: int,
    ) -> Event:
        """Write ``value`` and the expiry to an existing file if it matches ``prev_value`` and
        ``prev_index`` (an empty value / zero index is not compared); else TEST_FAILED."""
        with _Counting(self.stats, "compare_and_swap"):
            path = clean_path(path)
            if path == "/":
                raise _slip(V2Error(ErrorCode.ROOT_RONLY, "/", self.index))
            node = self._internal_get(path)
            if node.is_dir:
                raise V2Error(ErrorCode.NOT_FILE, path, self.index)
            cause = node.compare(prev_value, prev_index)
            if cause is not None:
                raise V2Error(ErrorCode.TEST_FAILED, cause, self.index)
            if refresh:
                value = node.value
            self.index += 1
            prev = node.repr(False, False, now_ns)
            node.value = value
            node.modified_index = self.index
            self._update_ttl(node, expire_ns)
            expiration, ttl = node.expiration_and_ttl(now_ns)
            extern = NodeExtern(
                key=path,
                value=value,
                expiration_ns=expiration,
                ttl=ttl,
                modified_index=self.index,
                created_index=node.created_index,
            )
            event = Event(COMPARE_AND_SWAP, extern, prev, etcd_index=self.index)
            self._publish(event, refresh)
            return event

    def delete(self, path: str, *, dir: bool = False, recursive: bool = False, now_ns: int) -> Event:
        """Remove a file, an empty directory (``dir``) or a whole directory (``recursive``, which
        implies ``dir``). Watchers of every removed node hear of it."""
        with _Counting(self.stats, "delete"):
            path = clean_path(path)
            if path == "/":
                raise _slip(V2Error(ErrorCode.ROOT_RONLY, "/", self.index))
            dir = dir or recursive
            node = self._internal_get(path)
            next_index = self.index + 1
            extern = NodeExtern(
                key=path, dir=node.is_dir, modified_index=next_index, created_index=node.created_index
            )
            event = Event(DELETE, extern, node.repr(False, False, now_ns), etcd_index=next_index)
            if node.is_dir and not dir:
                raise V2Error(ErrorCode.NOT_FILE, node.path, self.index)
            if node.is_dir and node.children and not recursive:
                raise V2Error(ErrorCode.DIR_NOT_EMPTY, node.path, self.index)
            self._remove(node, event)
            self.index = next_index
            self._publish(event, refresh=False)
            return event

    def compare_and_delete(
        self, path: str, *, prev_value: str = "", prev_index: int = 0, now_ns: int
    ) -> Event:
        """Remove a file if it matches ``prev_value`` and ``prev_index`` (as compare_and_swap)."""
        with _Counting(self.stats, "compare_and_delete"):
            path = clean_path(path)
            node = self._internal_get(path)
            if node.is_dir:
                # etcd's user keys live under /1 and its HTTP layer strips that prefix from causes, so
                # the root's own path shows as no cause at all.
                raise _slip(V2Error(ErrorCode.NOT_FILE, "" if path == "/" else path, self.index))
            cause = node.compare(prev_value, prev_index)
            if cause is not None:
                raise _slip(V2Error(ErrorCode.TEST_FAILED, cause, self.index))
            self.index += 1
            extern = NodeExtern(key=path, modified_index=self.index, created_index=node.created_index)
            event = Event(COMPARE_AND_DELETE, extern, node.repr(False, False, now_ns), etcd_index=self.index)
            self._remove(node, event)
            self._publish(event, refresh=False)
            return event

    def delete_expired(self, now_ns: int) -> list[Event]:
        """Remove every node whose expiry is at or before ``now_ns``, soonest first, one "expire" event
        (and one index) each; an expiring directory takes its children with it in its one event."""
        events = []
        while True:
            node = self._ttl.top()
            if node is None or node.expire_ns is None or node.expire_ns > now_ns:
                break
            self._ttl.pop()
            self.index += 1
            extern = NodeExtern(
                key=node.path, dir=node.is_dir, modified_index=self.index, created_index=node.created_index
            )
            event = Event(EXPIRE, extern, node.repr(False, False, now_ns), etcd_index=self.index)
            self._remove(node, event)
            self.stats.expire_count += 1
            self._publish(event, refresh=False)
            events.append(event)
        return events

    def advance_index(self) -> None:
        """Consume one index for a write outside the user key space. etcd 3.4 keeps cluster membership
        in the same v2 store (under /0), so its first user write gets index 4 on a fresh one-member
        cluster; a member that wants the same numbers calls this for each such write. The history records
        a placeholder no watch matches, so it also takes a slot of the history as in etcd."""
        self.index += 1
        self._history.add(
            Event(SET, NodeExtern(key="", modified_index=self.index), etcd_index=self.index, internal=True)
        )

    # ----------------------------------------------------------------- watches

    def watch(
        self, path: str, *, recursive: bool = False, stream: bool = False, since_index: int = 0
    ) -> Watcher:
        """Watch ``path`` (and its subtree when ``recursive``) from ``since_index`` (0: the next event).

        An event at or after ``since_index`` still in the history is put in ``pending`` at once (its
        ``etcd_index`` set to the current index) and the watcher is not registered. Raises
        EVENT_INDEX_CLEARED when ``since_index`` is older than the history holds.
        """
        key = clean_path(path)
        if since_index == 0:
            since_index = self.index + 1
        found = self._history.scan(key, recursive, since_index, self.index)
        watcher = Watcher(
            key,
            recursive=recursive,
            stream=stream,
            since_index=since_index,
            start_index=self.index,
            buffer=self._watcher_buffer,
        )
        if found is not None:
            watcher.pending.append(found.with_etcd_index(self.index))
            watcher.removed = True
            return watcher
        self._hub.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        """Stop ``watcher`` (the client went away); ``on_event`` is not called. Idempotent."""
        self._hub.remove(watcher)

    @property
    def watcher_count(self) -> int:
        return self._hub.count

    def clear_watchers(self) -> None:
        """Drop every watcher ("watcher cleared by recovery"): each gets ``removed`` True and one
        ``on_event()`` call with nothing appended, so the I/O layer can answer 400 WATCHER_CLEARED."""
        for watcher in self._hub.clear():
            watcher._signal()

    # ----------------------------------------------------------------- snapshots

    def save(self) -> bytes:
        """The tree (with expiry times), the index and the counters as JSON bytes; no watchers, no history."""
        return encode_state(self._root, self.index, self.stats)

    @classmethod
    def restore(
        cls, data: bytes, history_size: int = 1000, *, watcher_buffer: int = _WATCHER_BUFFER
    ) -> V2Store:
        """A store from ``save()`` bytes. The history starts empty at the saved index: a watch from an
        older index gets EVENT_INDEX_CLEARED."""
        store = cls(history_size, watcher_buffer=watcher_buffer)
        store._root, store.index, store.stats = decode_state(data)
        store._history = _EventHistory(history_size, next_index=store.index + 1)
        for node in _walk(store._root):
            if node.expire_ns is not None:
                store._ttl.push(node)
        return store

    # ----------------------------------------------------------------- internals

    def _internal_get(self, path: str) -> _Node:
        """The node at a cleaned path: NOT_DIR (cause: the file in the way) or KEY_NOT_FOUND (cause: the
        first missing path)."""
        node = self._root
        for name in path.split("/"):
            if not name:
                continue
            if node.children is None:
                raise V2Error(ErrorCode.NOT_DIR, node.path, self.index)
            child = node.children.get(name)
            if child is None:
                raise V2Error(ErrorCode.KEY_NOT_FOUND, _join(node.path, name), self.index)
            node = child
        return node

    def _internal_create(
        self,
        path: str,
        is_dir: bool,
        value: str,
        expire_ns: int | None,
        action: str,
        *,
        replace: bool,
        now_ns: int,
    ) -> Event:
        """etcd's internalCreate: make missing parent directories, then the node at ``next index``."""
        current, next_index = self.index, self.index + 1
        if path == "/":
            raise V2Error(ErrorCode.ROOT_RONLY, "/", current)
        if expire_ns is not None and expire_ns < _MIN_EXPIRE_NS:
            expire_ns = None
        parent_path, name = split_path(path)
        try:
            parent = self._make_dirs(parent_path, next_index)
        except V2Error:
            # etcd counts a file in the way as a failed set as well, whatever the operation (so a create
            # that fails here counts twice); set itself never gets here, its lookup fails first.
            self.stats.sets_fail += 1
            raise
        assert parent.children is not None
        prev_node = None
        existing = parent.children.get(name)
        if existing is not None:
            if not replace:
                raise V2Error(ErrorCode.NODE_EXIST, path, current)
            if existing.is_dir:
                raise V2Error(ErrorCode.NOT_FILE, path, current)
            prev_node = existing.repr(False, False, now_ns)
            self._remove(existing, None)
        node = _Node(path, next_index, parent, expire_ns, value=value, is_dir=is_dir)
        parent.children[name] = node
        extern = NodeExtern(
            key=path,
            value=None if is_dir else value,
            dir=is_dir,
            modified_index=next_index,
            created_index=next_index,
        )
        if expire_ns is not None:
            self._ttl.push(node)
            extern.expiration_ns, extern.ttl = node.expiration_and_ttl(now_ns)
        self.index = next_index
        return Event(action, extern, prev_node, etcd_index=next_index)

    def _make_dirs(self, dir_path: str, created_index: int) -> _Node:
        """The directory at ``dir_path``, creating missing ones (permanent, at ``created_index``);
        NOT_DIR with the file's path if a file is in the way."""
        node = self._root
        for name in dir_path.split("/"):
            if not name:
                continue
            assert node.children is not None
            child = node.children.get(name)
            if child is None:
                child = _Node(_join(node.path, name), created_index, node, None, is_dir=True)
                node.children[name] = child
            elif not child.is_dir:
                raise V2Error(ErrorCode.NOT_DIR, child.path, self.index)
            node = child
        return node

    def _remove(self, node: _Node, event: Event | None) -> None:
        """Unlink ``node`` and its subtree, children first. With ``event``, the watchers of every removed
        node hear of it (etcd's delete callback), before the event's own notification."""
        if not node.children:
            self._unlink(node, event)
            return
        # Depth first without recursion: a tree may be deeper than Python's stack (etcd has no limit), and
        # an exception here would stop the apply loop at the same entry on every restart.
        stack = [(node, iter(list(node.children.values())))]
        while stack:
            current, children = stack[-1]
            child = next(children, None)
            if child is not None:
                stack.append((child, iter(list(child.children.values())) if child.children else iter(())))
                continue
            stack.pop()
            self._unlink(current, event)

    def _unlink(self, node: _Node, event: Event | None) -> None:
        parent = node.parent
        if parent is not None and parent.children is not None and parent.children.get(node.name) is node:
            del parent.children[node.name]
            if event is not None:
                self._hub.notify_path(event, node.path, deleted=True)
        self._ttl.remove(node)

    def _update_ttl(self, node: _Node, expire_ns: int | None) -> None:
        if node.expire_ns is not None:
            node.expire_ns = expire_ns
            if expire_ns is None:
                self._ttl.remove(node)
            else:
                self._ttl.update(node)
        elif expire_ns is not None:
            node.expire_ns = expire_ns
            self._ttl.push(node)

    def _publish(self, event: Event, refresh: bool) -> None:
        """Record ``event``; tell the watchers unless it is a refresh (history only, as etcd)."""
        if refresh:
            event.refresh = True
            self._history.add(event)
            return
        self._history.add(event)
        self._hub.notify(event)


class _Counting:
    """Counts the enclosed operation in ``stats``: success unless a V2Error escapes, except the errors
    etcd 3.4 counts as successes (marked by ``_slip``)."""

    def __init__(self, stats: StoreStats, operation: str) -> None:
        self._stats = stats
        self._operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            self._stats.count(self._operation, True)
        elif isinstance(exc, V2Error):
            self._stats.count(self._operation, getattr(exc, "_counted_as_success", False))
        return False


def _slip(err: V2Error) -> V2Error:
    """Mark an error etcd 3.4 counts as a success in its stats (see StoreStats)."""
    err._counted_as_success = True  # type: ignore[attr-defined]
    return err


def _join(parent: str, name: str) -> str:
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


def _walk(root: _Node) -> list[_Node]:
    """The tree in pre-order (children in the tree's order), without recursion."""
    nodes, stack = [], [root]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if node.children:
            stack.extend(reversed(list(node.children.values())))
    return nodes

"""The v3 Watch service: one bidirectional stream carries many watches (create, cancel, progress).

The watch hub (``flotilla.mvcc.watch``) decides which events each watcher gets; a ``WatchStream`` turns
its deliveries into ``WatchResponse`` messages on an outgoing queue. A stream whose client reads too
slowly has its watchers desynced: the hub stops pushing to them and the server's sync loop resends from
where each left off once the queue drains, so nothing is lost and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc
from flotilla.etcd.apply import event_to_pb
from flotilla.etcd.server import EtcdServer
from flotilla.mvcc.types import EventType

__all__ = ["WatchService", "WatchStream"]

log = logging.getLogger("flotilla.etcd")

INVALID_WATCH_ID = -1  # a progress response belongs to no watch (clientv3.InvalidWatchID)
MAX_QUEUED_RESPONSES = 1024
_FILTERS = {
    rpc_pb2.WatchCreateRequest.NOPUT: EventType.PUT,
    rpc_pb2.WatchCreateRequest.NODELETE: EventType.DELETE,
}
_DUPLICATE_ID_REASON = "mvcc: duplicate watch ID provided on the WatchStream"


class WatchStream:
    """The watches of one client stream and its outgoing responses."""

    def __init__(self, server: EtcdServer) -> None:
        self.server = server
        self.queue: asyncio.Queue[rpc_pb2.WatchResponse | None] = asyncio.Queue()
        self.watchers: dict[int, object] = {}
        self.watch_ids: dict[object, int] = {}
        self.progress_ids: set[int] = set()
        self._next_id = 0

    # --- from the client --------------------------------------------------------------------------
    def handle(self, request: rpc_pb2.WatchRequest) -> None:
        kind = request.WhichOneof("request_union")
        if kind == "create_request":
            self._create(request.create_request)
        elif kind == "cancel_request":
            self._cancel(request.cancel_request.watch_id)
        elif kind == "progress_request":
            self.queue.put_nowait(rpc_pb2.WatchResponse(header=self._header(), watch_id=INVALID_WATCH_ID))

    def _header(self) -> rpc_pb2.ResponseHeader:
        return self.server.header(self.server.store.revision)

    def _create(self, r: rpc_pb2.WatchCreateRequest) -> None:
        server = self.server
        watch_id = r.watch_id
        if watch_id == 0:
            while self._next_id in self.watchers:
                self._next_id += 1
            watch_id = self._next_id
            self._next_id += 1
        elif watch_id in self.watchers:
            self.queue.put_nowait(
                rpc_pb2.WatchResponse(
                    header=self._header(), watch_id=INVALID_WATCH_ID, created=True, canceled=True,
                    cancel_reason=_DUPLICATE_ID_REASON,
                )
            )  # fmt: skip
            return
        filters = frozenset(_FILTERS[f] for f in r.filters if f in _FILTERS)
        key, range_end = r.key, r.range_end
        watcher = server.hub.add(
            key, range_end, r.start_revision, prev_kv=r.prev_kv, filters=filters, tag=self
        )
        self.queue.put_nowait(rpc_pb2.WatchResponse(header=self._header(), watch_id=watch_id, created=True))
        if watcher.compacted:
            self.queue.put_nowait(self._compacted_response(watcher, watch_id))
            return
        self.watchers[watch_id] = watcher
        self.watch_ids[watcher] = watch_id
        if r.progress_notify:
            self.progress_ids.add(watch_id)
        if server.hub.unsynced_count():
            server.sync_watchers()

    def _cancel(self, watch_id: int) -> None:
        watcher = self.watchers.pop(watch_id, None)
        if watcher is None:
            return  # etcd 3.4 answers nothing to a cancel of a watch it does not have
        self.server.hub.cancel(watcher)
        del self.watch_ids[watcher]
        self.progress_ids.discard(watch_id)
        self.queue.put_nowait(rpc_pb2.WatchResponse(header=self._header(), watch_id=watch_id, canceled=True))

    # --- from the hub -----------------------------------------------------------------------------
    def deliver(self, watcher, events, revision: int) -> None:
        watch_id = self.watch_ids.get(watcher)
        if watch_id is None:
            return
        if watcher.compacted:
            self.queue.put_nowait(self._compacted_response(watcher, watch_id))
            self.watchers.pop(watch_id, None)
            self.watch_ids.pop(watcher, None)
            return
        if not events:
            return
        if self.queue.qsize() >= MAX_QUEUED_RESPONSES:
            # The client reads too slowly: hand the batch back (the watcher resumes at its first event
            # once the queue has room, as etcd's victim watchers do), so memory stays bounded.
            self.server.hub.desync(watcher, resume_revision=events[0].kv.mod_revision)
            return
        header = self.server.header(revision)
        with_prev = watcher.prev_kv
        resp = rpc_pb2.WatchResponse(header=header, watch_id=watch_id)
        resp.events.extend([event_to_pb(e, with_prev) for e in events])
        self.queue.put_nowait(resp)

    def _compacted_response(self, watcher, watch_id: int) -> rpc_pb2.WatchResponse:
        # etcd 3.4 cancels such a watch with a response that carries no revision and no reason: the
        # mvcc layer's WatchResponse for it has Revision 0, and 3.4 sets no cancel_reason.
        return rpc_pb2.WatchResponse(
            header=self.server.header(0), watch_id=watch_id, canceled=True,
            compact_revision=watcher.compact_revision,
        )  # fmt: skip

    def send_progress(self) -> None:
        """A progress notification to each progress_notify watcher that has caught up: one still
        catching up would be told it has seen revisions it was not sent yet (etcd skips those too)."""
        for watch_id in self.progress_ids:
            watcher = self.watchers.get(watch_id)
            if watcher is not None and watcher.synced:
                self.queue.put_nowait(rpc_pb2.WatchResponse(header=self._header(), watch_id=watch_id))

    def close(self) -> None:
        for watcher in self.watchers.values():
            self.server.hub.cancel(watcher)
        self.watchers.clear()
        self.watch_ids.clear()


class WatchService(rpc_pb2_grpc.WatchServicer):
    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    async def Watch(self, request_iterator, context):
        stream = WatchStream(self.server)

        async def read_requests() -> None:
            # A client that stops sending (the gateway's single request, a half-close) still receives
            # events; only a broken stream ends the watches.
            try:
                async for request in request_iterator:
                    stream.handle(request)
            except Exception:
                stream.queue.put_nowait(None)
                raise

        async def progress() -> None:
            while True:
                # --experimental-watch-progress-notify-interval (etcd's default: 10 minutes)
                await asyncio.sleep(self.server.settings.watch_progress_notify_interval_s)
                stream.send_progress()

        reader = asyncio.ensure_future(read_requests())
        ticker = asyncio.ensure_future(progress())
        try:
            while True:
                response = await stream.queue.get()
                if response is None:
                    break
                yield response
        finally:
            stream.close()
            for task in (reader, ticker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

"""A watch that outlives the member serving it.

One Watch stream per watcher. The watcher remembers the next revision it has not seen: the last event's
mod_revision + 1 (or the created response's header revision + 1 for a watch "from now", or a progress
notification's). When the stream breaks — the member died, lost its leader, or cancelled the watch for a
transient reason — it reconnects to the next endpoint and asks for exactly that revision, so events are
neither lost nor repeated (events below it that a lagging member replays are dropped). A start revision
that was compacted away in the meantime raises ``Compacted``: the caller must re-read and watch again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import grpc

from flotilla.client import errors
from flotilla.client._transport import RetryElsewhere, Stubs, retryable, stream_write
from flotilla.client.types import Event, WatchResponse
from flotilla.etcd.api import rpc_pb2

if TYPE_CHECKING:
    from flotilla.client.client import EtcdClient

__all__ = ["Watch"]

# Cancel reasons after which the same watch can be asked of another member.
_TRANSIENT_CANCEL_REASONS = ("no leader", "leader changed", "server stopped", "not capable")


class Watch:
    """Async iterator of ``WatchResponse``; also an async context manager. ``aclose()`` (or leaving the
    ``async with``, or dropping the iterator after ``break``) cancels the watch on the server."""

    def __init__(
        self,
        client: EtcdClient,
        key: bytes,
        range_end: bytes,
        *,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
    ) -> None:
        self._client = client
        self._key = key
        self._range_end = range_end
        self._prev_kv = prev_kv
        self._progress_notify = progress_notify
        self.next_revision = start_revision  # 0 until the first created response says where "now" is
        self.endpoint = ""  # the member serving the watch, for messages
        self.reconnects = 0
        self._call: grpc.aio.StreamStreamCall | None = None
        self._index = 0
        self._watch_id = 0
        self._closed = False

    @property
    def _operation(self) -> str:
        what = self._key.decode(errors="backslashreplace")
        return f"watch {what!r}" + (" (range)" if self._range_end else "")

    def __aiter__(self) -> Watch:
        return self

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def __anext__(self) -> WatchResponse:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._call is None:
                await self._connect()
            try:
                response = await self._call.read()
            except asyncio.CancelledError:
                # grpc.aio reports a call cancelled by closing its channel as CancelledError too.
                if self._client.pool.closed and not asyncio.current_task().cancelling():
                    await self.aclose()
                    raise errors.ClientError(
                        self._operation, self.endpoint, "the client is closed", hint="use an open EtcdClient"
                    ) from None
                raise
            except grpc.aio.AioRpcError as e:
                if not retryable(e, idempotent=True):
                    await self.aclose()
                    raise errors.from_rpc_error(e, self._operation, self.endpoint) from None
                self._reconnect_elsewhere()
                continue
            if response is grpc.aio.EOF:
                self._reconnect_elsewhere()
                continue
            result = await self._handle(response)
            if result is not None:
                return result

    async def _handle(self, r: rpc_pb2.WatchResponse) -> WatchResponse | None:
        if r.canceled:
            if r.compact_revision:
                await self.aclose()
                raise errors.Compacted(
                    self._operation, self.endpoint,
                    f"revision {self.next_revision} was compacted; the oldest kept is {r.compact_revision}",
                    compact_revision=r.compact_revision,
                )  # fmt: skip
            if any(reason in r.cancel_reason for reason in _TRANSIENT_CANCEL_REASONS):
                self._reconnect_elsewhere()
                return None
            await self.aclose()
            raise errors.ClientError(
                self._operation, self.endpoint, f"cancelled by the server: {r.cancel_reason}"
            )
        if r.events:
            # A member replaying from an older point must not make the caller see an event twice.
            events = [Event.from_pb(e) for e in r.events if e.kv.mod_revision >= self.next_revision]
            if not events:
                return None
            self.next_revision = events[-1].kv.mod_revision + 1
            return WatchResponse(events, r.header.revision)
        if r.created:
            return None
        # A progress notification: every change up to the header's revision has been delivered.
        self.next_revision = max(self.next_revision, r.header.revision + 1)
        return WatchResponse([], r.header.revision) if self._progress_notify else None

    async def _connect(self) -> None:
        client = self._client
        create = rpc_pb2.WatchCreateRequest(
            key=self._key, range_end=self._range_end, start_revision=self.next_revision,
            prev_kv=self._prev_kv, progress_notify=self._progress_notify,
        )  # fmt: skip

        async def attempt(stubs: Stubs, attempt_s: float):
            # The stream lives as long as the watch: no deadline on the call, one on each wait below.
            call = stubs.watch.Watch(metadata=client.metadata)
            try:
                await stream_write(call, rpc_pb2.WatchRequest(create_request=create), attempt_s)
                async with asyncio.timeout(attempt_s):
                    created = await call.read()
            except TimeoutError:
                call.cancel()
                raise RetryElsewhere(f"no answer to the watch request within {attempt_s:.3g}s") from None
            except BaseException:
                call.cancel()
                raise
            if created is grpc.aio.EOF or not created.created:
                call.cancel()
                raise RetryElsewhere("the member closed the watch stream without creating the watch")
            return call, created, stubs

        call, created, stubs = await client.with_failover(self._operation, attempt, idempotent=True)
        self._index, self.endpoint = stubs.index, stubs.url
        self._call = call
        self._watch_id = created.watch_id
        if created.canceled:
            await self.aclose()
            raise errors.ClientError(self._operation, self.endpoint, f"refused: {created.cancel_reason}")
        if self.next_revision == 0:
            self.next_revision = created.header.revision + 1

    def _reconnect_elsewhere(self) -> None:
        self._drop_call()
        self._client.pool.failed(self._index)
        self.reconnects += 1

    def _drop_call(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()  # ends the stream and with it the server's watcher

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        call = self._call
        if call is not None:
            cancel = rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=self._watch_id))
            # Polite first (etcd then drops the watcher at once); the stream's cancel below makes sure.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(0.5):
                    await call.write(cancel)
        self._drop_call()

    def __del__(self) -> None:
        # Breaking out of ``async for`` drops the iterator without aclose(): end the stream anyway.
        call = self._call
        if call is not None:
            with contextlib.suppress(Exception):
                call.cancel()

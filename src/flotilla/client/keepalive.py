"""Keeping a lease alive in the background, and saying when it is lost.

``keep_alive(client, lease_id)`` is an async context manager. Inside it a task (owned by a TaskGroup in
the context manager) refreshes the lease every ttl/3 over one LeaseKeepAlive stream; when the stream or
its member fails it opens one on the next endpoint. The lease counts as lost — ``lost`` is set and the
task ends — when the server says it no longer exists (TTL 0), or when no refresh succeeded before the
last known TTL ran out, measured from when that refresh was *sent* (so the local view expires no later
than the server's). Whoever holds something under the lease must give it up once ``lost`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from flotilla.client import errors
from flotilla.client._transport import stream_write
from flotilla.etcd.api import rpc_pb2

if TYPE_CHECKING:
    from flotilla.client.client import EtcdClient

__all__ = ["KeepAlive", "keep_alive"]

log = logging.getLogger("flotilla.client")

_RETRY_MIN_S = 0.05
_RETRY_MAX_S = 0.5


class KeepAlive:
    """The state of one kept-alive lease: ``lost`` is set once it is gone for good; ``ttl_s`` is the TTL
    the server last granted; ``expires_at`` the loop time by which it lapses without another refresh."""

    def __init__(self, lease_id: int, ttl_s: float, now: float) -> None:
        self.lease_id = lease_id
        self.ttl_s = ttl_s
        self.expires_at = now + ttl_s
        self.lost = asyncio.Event()
        self.reason = ""  # why it was lost
        self.refreshes = 0
        self.endpoint = ""

    async def wait_lost(self) -> None:
        await self.lost.wait()

    def _lose(self, reason: str) -> None:
        self.reason = reason
        log.warning("lease %x lost: %s", self.lease_id, reason)
        self.lost.set()


@contextlib.asynccontextmanager
async def keep_alive(
    client: EtcdClient, lease_id: int, *, ttl_s: float | None = None
) -> AsyncIterator[KeepAlive]:
    """See the module docstring. ``ttl_s`` defaults to the lease's granted TTL (asked of the server)."""
    if ttl_s is None:
        ttl_s = (await client.lease_time_to_live(lease_id)).granted_ttl_s
    state = KeepAlive(lease_id, ttl_s, asyncio.get_running_loop().time())
    body_error: BaseException | None = None
    async with asyncio.TaskGroup() as tasks:
        refresher = tasks.create_task(
            _refresh_until_lost(client, state), name=f"lease-keepalive-{lease_id:x}"
        )
        try:
            yield state
        except BaseException as e:  # re-raised below: a TaskGroup would wrap it in an ExceptionGroup
            body_error = e
        finally:
            refresher.cancel()
    if body_error is not None:
        raise body_error


async def _refresh_until_lost(client: EtcdClient, state: KeepAlive) -> None:
    loop = asyncio.get_running_loop()
    call = None
    index = client.pool.current
    retry_s = _RETRY_MIN_S
    try:
        while True:
            if loop.time() >= state.expires_at:
                state._lose(
                    f"not refreshed within its TTL of {state.ttl_s:g}s (last tried {client.pool.url(index)})"
                )
                return
            try:
                if call is None:
                    index = client.pool.current
                    stubs = await client.stubs(index, state.expires_at)
                    call = stubs.lease.LeaseKeepAlive(metadata=client.metadata)
                    state.endpoint = stubs.url
                sent_at = loop.time()
                # A member forwarding to a dead leader never answers: give up on it in time to try the
                # others before the lease runs out.
                wait_s = min(client.timeout_s, max(state.ttl_s / 3, 0.5), state.expires_at - sent_at)
                ttl = await _refresh_once(call, state, timeout_s=wait_s)
            except (grpc.aio.AioRpcError, TimeoutError, ConnectionError) as e:
                log.info("lease %x keep-alive on %s failed: %s", state.lease_id, client.pool.url(index), e)
                if call is not None:
                    call.cancel()
                    call = None
                client.pool.failed(index)
                await asyncio.sleep(max(0.0, min(retry_s, state.expires_at - loop.time())))
                retry_s = min(retry_s * 2, _RETRY_MAX_S)
                continue
            if ttl <= 0:
                state._lose("the server says it expired or was revoked")
                return
            retry_s = _RETRY_MIN_S
            state.ttl_s, state.expires_at = ttl, sent_at + ttl
            state.refreshes += 1
            await asyncio.sleep(ttl / 3)
    except errors.ClientError as e:  # authentication failed: nothing more this task can do
        state._lose(str(e))
    finally:
        if call is not None:
            call.cancel()


async def _refresh_once(call, state: KeepAlive, *, timeout_s: float) -> int:
    timeout_s = max(timeout_s, 0.001)
    await stream_write(call, rpc_pb2.LeaseKeepAliveRequest(ID=state.lease_id), timeout_s)
    async with asyncio.timeout(timeout_s):
        response = await call.read()
    if response is grpc.aio.EOF:
        raise ConnectionError("the member closed the keep-alive stream")
    return response.TTL

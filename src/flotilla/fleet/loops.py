"""The loop engine and agent share (STYLE 5): reconcile on every change in the registry directories
they read and at least every interval, one snapshot -> plan -> apply pass at a time, a failed pass logged
and retried next time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from flotilla.client import ClientError

__all__ = ["reconcile_until", "sleep_or", "until_first"]

DEBOUNCE_S = 0.02  # let a burst of changes land in one snapshot


async def reconcile_until(
    stop: asyncio.Event,
    reconcile: Callable[[], Awaitable[object]],
    *,
    changes: Sequence[Callable[[], AsyncIterator[object]]],
    interval_s: float,
    log: logging.Logger,
    who: str,
) -> None:
    """Run ``reconcile`` once at once, then whenever one of ``changes`` yields (debounced) and at least
    every ``interval_s``, until ``stop``."""
    changed = asyncio.Event()
    changed.set()

    async def follow(change_feed: Callable[[], AsyncIterator[object]]) -> None:
        async for _ in change_feed():
            changed.set()

    watchers = [asyncio.ensure_future(follow(feed)) for feed in changes]
    try:
        while not stop.is_set():
            await sleep_or(changed, interval_s)
            changed.clear()
            await asyncio.sleep(DEBOUNCE_S)
            try:
                await reconcile()
            except (TimeoutError, ClientError) as error:
                log.warning("%s: reconcile failed: %s", who, error)
    finally:
        for watcher in watchers:
            watcher.cancel()
        for watcher in watchers:
            with contextlib.suppress(asyncio.CancelledError, ClientError):
                await watcher


async def sleep_or(event: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``event`` is set, whichever comes first."""
    # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that arrives just as the event is
    # set, and the cancelled loop then runs on forever (a test saw a killed agent keep going).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def until_first(*makers: Callable[[], Awaitable[object]]) -> None:
    """Run the coroutines together until the first one returns; cancel the rest."""
    tasks = [asyncio.ensure_future(make()) for make in makers]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ClientError):
                await task

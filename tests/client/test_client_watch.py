"""Watches on one member (Flotilla and etcd 3.4): from a revision, from now, with previous values, and
closing them — by aclose, by leaving ``async with``, by breaking out of ``async for`` — ends the watcher
on the server."""

from __future__ import annotations

import asyncio

import client_members
import pytest
from client_members import run, watcher_total

from flotilla.client import ClientError, EtcdClient

shared_member = client_members.shared_member  # the fixture, used by name


async def _collect(watch, count: int) -> list:
    events = []
    async for response in watch:
        events.extend(response.events)
        if len(events) >= count:
            return events
    raise AssertionError("the watch ended early")


def test_watch_prefix_from_a_revision_replays_history_in_order(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            first = await client.put("w1/a", "1")
            await client.put("w1/b", "2")
            await client.put("w1-not/x", "no")
            await client.delete("w1/a")
            async with client.watch_prefix("w1/", start_revision=first, prev_kv=True) as watch:
                events = await _collect(watch, 3)
                late = await client.put("w1/c", "3")
                (event,) = await _collect(watch, 1)
            assert [(e.type, e.kv.key, e.kv.value) for e in events] == [
                ("PUT", b"w1/a", b"1"), ("PUT", b"w1/b", b"2"), ("DELETE", b"w1/a", b""),
            ]  # fmt: skip
            assert events[2].prev_kv.value == b"1" and events[0].prev_kv is None
            assert (event.kv.key, event.kv.mod_revision) == (b"w1/c", late)
            assert watch.next_revision == late + 1

    run(body())


def test_watch_from_now_sees_only_later_changes_of_its_key(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            await client.put("w2/k", "before")
            watch = client.watch("w2/k")
            pending = asyncio.ensure_future(_collect(watch, 2))
            while watch.next_revision == 0:  # created: "now" is fixed
                await asyncio.sleep(0.01)
            await client.put("w2/other", "x")
            await client.put("w2/k", "after")
            await client.delete("w2/k")
            events = await pending
            await watch.aclose()
            assert [(e.type, e.kv.value) for e in events] == [("PUT", b"after"), ("DELETE", b"")]

    run(body())


def test_closing_a_watch_cancels_it_on_the_server(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            base = await asyncio.to_thread(watcher_total, shared_member)
            revision = await client.put("w3/k", "1")

            watch = client.watch_prefix("w3/", start_revision=revision)
            await _collect(watch, 1)
            assert await asyncio.to_thread(watcher_total, shared_member) == base + 1
            await watch.aclose()
            await _wait_watchers(shared_member, base)

            async with client.watch("w3/k", start_revision=revision) as watch:
                await _collect(watch, 1)
            await _wait_watchers(shared_member, base)

            async for _ in client.watch("w3/k", start_revision=revision):
                break  # the dropped iterator ends its stream
            await _wait_watchers(shared_member, base)

    run(body())


async def _wait_watchers(member, expected: int) -> None:
    # The server drops the watcher when it sees the stream end; poll until it has.
    while (count := await asyncio.to_thread(watcher_total, member)) != expected:
        assert count > expected
        await asyncio.sleep(0.05)


def test_closing_the_client_ends_its_watches_and_calls(shared_member):
    async def body():
        client = EtcdClient([shared_member.endpoint])
        revision = await client.put("w4/k", "1")
        watch = client.watch("w4/k", start_revision=revision)
        await _collect(watch, 1)
        await client.close()
        with pytest.raises(ClientError, match="the client is closed"):
            await anext(watch)
        with pytest.raises(ClientError, match="the client is closed"):
            await client.get("w4/k")

    run(body())

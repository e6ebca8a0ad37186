"""Failover in 3-member clusters (Flotilla and etcd 3.4), the way fleet needs it: when the member a client
uses is killed — the leader, in the unary test — calls move to the next endpoint, a kept-alive lease stays
alive, and a watch resumes on another member without losing or repeating an event."""

from __future__ import annotations

import asyncio

import pytest
from client_members import KINDS, cluster_of, run

from flotilla.client import EtcdClient, Op

BOUND_S = 20  # how long a test waits for something that must happen; never a speed requirement


@pytest.fixture(params=KINDS)
def cluster(request, tmp_path):
    members = cluster_of(request.param, tmp_path)
    yield members
    for member in members:
        member.kill()


async def _leader_first(client: EtcdClient, members) -> list:
    status = await client.status()
    ids = {(await client.status(m.endpoint)).member_id: m for m in members}
    leader = ids[status.leader]
    return [leader] + [m for m in members if m is not leader]


def test_unary_calls_and_keep_alive_survive_the_leader_being_killed(cluster):
    async def body():
        async with EtcdClient([m.endpoint for m in cluster]) as probe:
            ordered = await _leader_first(probe, cluster)
        async with EtcdClient([m.endpoint for m in ordered]) as client:
            await client.put("f1/before", "1")
            lease = await client.lease_grant(5)
            async with client.keep_alive(lease.id) as kept:
                while kept.refreshes == 0:
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(ordered[0].kill)
                # A put may be sent again (to the next member, also when one took it and then lost its
                # leader), so it succeeds across the election; a transaction would then be ambiguous.
                await client.put("f1/during", "x")
                assert await client.create("f1/after", "2", lease=lease.id)
                assert (await client.get("f1/before")).value == b"1"
                result = await client.txn([], [Op.get("f1/", prefix=True)])
                assert [kv.key for kv in result.responses[0].kvs] == [b"f1/after", b"f1/before", b"f1/during"]
                refreshed = kept.refreshes
                while kept.refreshes <= refreshed + 1:  # refreshed again, through another member
                    assert not kept.lost.is_set(), kept.reason
                    await asyncio.sleep(0.1)
                assert kept.endpoint != ordered[0].endpoint
            status = await client.status()
            assert status.endpoint != ordered[0].endpoint and status.leader != 0
            assert len(await client.member_list()) == 3

    run(body())


def test_watch_resumes_on_another_member_without_losing_or_repeating_events(cluster):
    async def body():
        endpoints = [m.endpoint for m in cluster]
        async with EtcdClient(endpoints) as watcher, EtcdClient(endpoints[1:]) as writer:
            start = await writer.put("f3/k000", "0")
            watch = watcher.watch_prefix("f3/", start_revision=start)
            seen = []

            async def consume(until: int) -> None:
                async for response in watch:
                    seen.extend(response.events)
                    if len(seen) >= until:
                        return

            await consume(1)
            assert watch.endpoint == cluster[0].endpoint
            for i in range(1, 30):
                await writer.put(f"f3/k{i:03d}", str(i))
            await consume(10)
            await asyncio.to_thread(cluster[0].kill)
            for i in range(30, 60):
                await writer.put(f"f3/k{i % 40:03d}", str(i))  # some keys written twice
            final, revision = await writer.get_prefix("f3/")
            await asyncio.wait_for(consume(revision - start + 1), BOUND_S)
            await watch.aclose()
            assert watch.reconnects >= 1 and watch.endpoint != cluster[0].endpoint
            # Every revision from the start to the end exactly once, in order: nothing lost, nothing twice.
            assert [e.kv.mod_revision for e in seen] == list(range(start, revision + 1))
            latest = {e.kv.key: e.kv for e in seen}
            assert sorted(latest.values(), key=lambda kv: kv.key) == final

    run(body())

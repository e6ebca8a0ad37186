"""Leases: grant, refresh, expiry, and the background keep-alive's ``lost`` signal, on a Flotilla member
and on etcd 3.4. TTLs are etcd's minimum (2 s) so expiry happens within the test."""

from __future__ import annotations

import asyncio

import client_members
import pytest
from client_members import run

from flotilla.client import EtcdClient, LeaseNotFound

MIN_TTL_S = 2  # etcd's smallest lease TTL (1.5 x its election timeout, rounded up)
BOUND_S = 20  # how long a test waits for something that must happen; never a speed requirement

# The fixtures, used by name.
shared_member = client_members.shared_member
single_member = client_members.single_member


def test_grant_refresh_time_to_live_and_revoke(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            lease = await client.lease_grant(30)
            assert lease.ttl_s == 30 and lease.id != 0
            await client.put("ls1/a", "1", lease=lease.id)
            info = await client.lease_time_to_live(lease.id, keys=True)
            assert (info.id, info.granted_ttl_s, info.keys) == (lease.id, 30, [b"ls1/a"])
            assert 0 < info.ttl_s <= 30
            assert await client.lease_keepalive_once(lease.id) == 30
            assert lease.id in await client.lease_leases()
            chosen = await client.lease_grant(30, lease_id=0x7001)
            assert chosen.id == 0x7001
            await client.lease_revoke(chosen.id)
            await client.lease_revoke(lease.id)
            assert await client.get("ls1/a") is None
            with pytest.raises(LeaseNotFound):
                await client.lease_revoke(lease.id)

    run(body())


def test_an_unrefreshed_lease_expires_and_takes_its_keys(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            lease = await client.lease_grant(MIN_TTL_S)
            await client.put("ls2/a", "1", lease=lease.id)
            # etcd checks for expired leases every 500 ms and revokes them through raft.
            while await client.get("ls2/a") is not None:
                await asyncio.sleep(0.2)
            with pytest.raises(LeaseNotFound):
                await client.lease_time_to_live(lease.id)
            with pytest.raises(LeaseNotFound):
                await client.lease_keepalive_once(lease.id)

    run(body())


def test_keep_alive_holds_the_lease_past_its_ttl_and_reports_loss_after_revoke(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            lease = await client.lease_grant(MIN_TTL_S)
            await client.put("ls3/a", "1", lease=lease.id)
            async with client.keep_alive(lease.id) as kept:
                await asyncio.sleep(MIN_TTL_S * 1.5 + 0.5)  # longer than the TTL: only refreshes keep it
                assert not kept.lost.is_set()
                assert kept.refreshes >= 2
                assert (await client.get("ls3/a")).lease == lease.id
                await client.lease_revoke(lease.id)
                await asyncio.wait_for(kept.wait_lost(), BOUND_S)
                assert "expired or was revoked" in kept.reason
            assert await client.get("ls3/a") is None

    run(body())


def test_keep_alive_of_an_unknown_lease_is_lost_at_once(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            with pytest.raises(LeaseNotFound):
                async with client.keep_alive(0x5151):
                    pass
            async with client.keep_alive(0x5151, ttl_s=5) as kept:
                await asyncio.wait_for(kept.wait_lost(), BOUND_S)

    run(body())


def test_keep_alive_reports_loss_when_no_member_answers_within_the_ttl(single_member):
    async def body():
        async with EtcdClient([single_member.endpoint], timeout_s=1) as client:
            lease = await client.lease_grant(MIN_TTL_S)
            async with client.keep_alive(lease.id) as kept:
                while kept.refreshes == 0:
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(single_member.kill)
                await asyncio.wait_for(kept.wait_lost(), BOUND_S)
                assert "not refreshed within its TTL" in kept.reason

    run(body())


def test_an_error_in_the_body_propagates_unwrapped(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            lease = await client.lease_grant(30)
            with pytest.raises(KeyError):
                async with client.keep_alive(lease.id):
                    raise KeyError("from the body")
            await client.lease_revoke(lease.id)

    run(body())

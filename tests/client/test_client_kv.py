"""KV, prefix ranges, transactions and their helpers, compaction and errors, on a Flotilla member and on
etcd 3.4: the client must behave the same on both (DESIGN decision 2)."""

from __future__ import annotations

import client_members
import pytest
from client_members import run

from flotilla.client import (
    Compacted,
    Compare,
    DeleteResult,
    EtcdClient,
    FutureRevision,
    InvalidRequest,
    KeyValue,
    LeaseNotFound,
    Op,
    PutResult,
    RangeResult,
    Unavailable,
)
from flotilla.ports import free_port

shared_member = client_members.shared_member  # the fixture, used by name


def test_put_get_delete_with_str_and_bytes(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            revision = await client.put("kv1/a", "alpha")
            kv = await client.get(b"kv1/a")
            assert kv == KeyValue(b"kv1/a", b"alpha", revision, revision, 1, 0)
            assert (kv.key_str, kv.value_str) == ("kv1/a", "alpha")
            second = await client.put(b"kv1/a", "\u00e9".encode())
            kv = await client.get("kv1/a")
            assert (kv.value_str, kv.version, kv.create_revision, kv.mod_revision) == (
                "\u00e9",
                2,
                revision,
                second,
            )
            assert await client.get("kv1/missing") is None
            assert await client.delete("kv1/a") == 1
            assert await client.delete("kv1/a") == 0
            assert await client.get("kv1/a") is None

    run(body())


def test_get_prefix_is_in_key_order_with_the_read_revision(shared_member):
    async def body():
        async with EtcdClient(shared_member.address) as client:  # host:port, as one string
            for key in ("kv2/b", "kv2/a", "kv2/c/d", "kv20", "kv2"):
                last = await client.put(key, key.upper())
            kvs, revision = await client.get_prefix("kv2/")
            assert [kv.key for kv in kvs] == [b"kv2/a", b"kv2/b", b"kv2/c/d"]
            assert revision == last
            keys_only, _ = await client.get_prefix("kv2/", keys_only=True, limit=2)
            assert [(kv.key, kv.value) for kv in keys_only] == [(b"kv2/a", b""), (b"kv2/b", b"")]
            old, old_revision = await client.get_prefix("kv2/", revision=last - 3)
            assert [kv.key for kv in old] == [b"kv2/a", b"kv2/b"] and old_revision == last
            stale, _ = await client.get_prefix("kv2/", serializable=True)
            assert stale == kvs
            counted = await client.range("kv2/", "kv2/z", count_only=True)
            assert (counted.count, counted.kvs) == (3, [])
            assert await client.delete_prefix("kv2/") == 3
            assert (await client.get_prefix("kv2"))[0] == [await client.get("kv2"), await client.get("kv20")]

    run(body())


def test_txn_compares_and_ops(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            rev = await client.put("kv3/x", "1")
            result = await client.txn(
                [
                    Compare.mod_revision("kv3/x") == rev,
                    Compare.value("kv3/x") == "1",
                    Compare.version("kv3/x") > 0,
                ],
                [Op.put("kv3/x", "2", prev_kv=True), Op.get("kv3/", prefix=True), Op.delete("kv3/none")],
                [Op.put("kv3/failed", "yes")],
            )
            assert result.succeeded
            put, got, deleted = result.responses
            assert (
                isinstance(put, PutResult) and put.prev_kv.value == b"1" and put.revision == result.revision
            )
            assert isinstance(got, RangeResult) and [kv.value for kv in got.kvs] == [b"2"]
            assert isinstance(deleted, DeleteResult) and deleted.deleted == 0
            result = await client.txn(
                [Compare.value("kv3/x") != "2", Compare.create_revision("kv3/x") < rev],
                [Op.put("kv3/wrong", "yes")],
                [Op.delete("kv3/", prefix=True, prev_kv=True)],
            )
            assert not result.succeeded
            assert [kv.key for kv in result.responses[0].prev_kvs] == [b"kv3/x"]
            assert (await client.get_prefix("kv3/"))[0] == []

    run(body())


def test_create_compare_and_swap_compare_and_delete(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            assert await client.create("kv4/leader", "m1")
            assert not await client.create("kv4/leader", "m2")
            kv = await client.get("kv4/leader")
            assert kv.value == b"m1"
            assert await client.compare_and_swap("kv4/leader", kv.mod_revision, "m3")
            assert not await client.compare_and_swap("kv4/leader", kv.mod_revision, "m4")  # stale revision
            assert await client.compare_and_swap("kv4/absent", 0, "new")  # 0: only if absent
            assert not await client.compare_and_delete("kv4/leader", "m1")
            assert await client.compare_and_delete("kv4/leader", b"m3")
            assert await client.get("kv4/leader") is None
            lease = await client.lease_grant(30)
            assert await client.create("kv4/owned", "x", lease=lease.id)
            assert (await client.get("kv4/owned")).lease == lease.id
            await client.lease_revoke(lease.id)
            assert await client.get("kv4/owned") is None

    run(body())


def test_errors_say_what_and_where(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            with pytest.raises(InvalidRequest) as empty:
                await client.put("", "v")
            assert "put ''" in str(empty.value) and shared_member.endpoint in str(empty.value)
            assert "key is not provided" in str(empty.value)
            revision = await client.put("kv5/a", "1")
            with pytest.raises(FutureRevision):
                await client.get("kv5/a", revision=revision + 1000)
            with pytest.raises(LeaseNotFound) as missing:
                await client.lease_time_to_live(0x1234)
            assert missing.value.lease_id == 0x1234
            with pytest.raises(LeaseNotFound):
                await client.lease_keepalive_once(0x1234)
            with pytest.raises(TypeError):
                await client.put("kv5/a", 5)

    run(body())


def test_compacted_revisions_raise_compacted(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            first = await client.put("kv6/a", "1")
            await client.put("kv6/a", "2")
            latest = await client.put("kv6/a", "3")
            await client.compact(latest, physical=True)
            with pytest.raises(Compacted) as read:
                await client.get("kv6/a", revision=first)
            assert "compacted" in str(read.value)
            watch = client.watch("kv6/a", start_revision=first)
            with pytest.raises(Compacted) as watched:
                await anext(watch)
            assert watched.value.compact_revision == latest
            assert (await client.get("kv6/a", revision=latest)).value == b"3"

    run(body())


def test_status_and_member_list(shared_member):
    async def body():
        async with EtcdClient([shared_member.endpoint]) as client:
            revision = await client.put("kv7/a", "1")
            status = await client.status()
            assert status.leader == status.member_id and status.raft_term >= 1
            assert status.revision >= revision and status.endpoint == shared_member.endpoint
            assert (await client.status(shared_member.endpoint)).member_id == status.member_id
            (member,) = await client.member_list()
            assert member.id == status.member_id and member.client_urls == [shared_member.endpoint]
            with pytest.raises(ValueError):
                await client.status("http://127.0.0.1:1")

    run(body())


def test_a_dead_endpoint_in_the_list_is_skipped_and_an_all_dead_list_is_unavailable(shared_member):
    async def body():
        dead = f"http://127.0.0.1:{free_port()}"
        async with EtcdClient([dead, shared_member.endpoint]) as client:
            # Not idempotent, yet safe to send on: the dead endpoint refused the connection.
            assert await client.create("f2/k", "v")
            assert client.endpoints == [dead, shared_member.endpoint]
        async with EtcdClient([dead, f"127.0.0.1:{free_port()}"], timeout_s=1) as client:
            with pytest.raises(Unavailable) as error:
                await client.get("f2/k")
            assert "range 'f2/k'" in str(error.value) and "gave up after" in str(error.value)

    run(body())

"""Clusters of in-process members over an in-memory transport: replication, forwarding, linearizable reads
on followers, membership changes (add with a snapshot, remove the leader, update, learners), snapshots to
a lagging follower, leader transfer."""

from __future__ import annotations

import asyncio

import pytest
from cluster_harness import cluster_settings, running_cluster

from flotilla.etcd import errors
from flotilla.etcd import server as server_module
from flotilla.etcd.api import etcdserver_pb2, rpc_pb2
from flotilla.etcd.membership import check_add
from flotilla.etcd.server import EtcdServer


def _put(server, key: bytes, value: bytes):
    return server.propose("put", rpc_pb2.PutRequest(key=key, value=value))


async def _get(server, key: bytes, serializable: bool = False) -> bytes | None:
    resp = await server.range(rpc_pb2.RangeRequest(key=key, serializable=serializable))
    return resp.kvs[0].value if resp.kvs else None


def _followers(cluster):
    return [s for s in cluster.net.servers.values() if not s.is_leader() and not s._stopped]


def test_writes_through_leader_or_follower_are_read_linearizably_everywhere(tmp_path):
    async def main() -> None:
        async with running_cluster(tmp_path) as cluster:
            leader = await cluster.wait_leader()
            follower = _followers(cluster)[0]
            await _put(leader, b"a", b"1")
            await _put(follower, b"b", b"2")  # forwarded to the leader by raft
            for server in cluster.net.servers.values():
                assert await _get(server, b"a") == b"1"
                assert await _get(server, b"b") == b"2"
            # Every member published its client URLs through raft; every member knows all of them.
            await cluster.wait_for(
                lambda: all(
                    all(m.client_urls for m in s.members.values()) for s in cluster.net.servers.values()
                ),
                "published attributes",
            )

    asyncio.run(main())


def test_a_new_member_joins_through_a_snapshot_with_v2_and_v3_state(tmp_path):
    async def main() -> None:
        async with running_cluster(tmp_path) as cluster:
            leader = await cluster.wait_leader()
            await _put(leader, b"k", b"v")
            event = await leader.v2_propose(etcdserver_pb2.Request(Method="PUT", Path="/x", Val="y"))
            follower = _followers(cluster)[0]
            member, members = await follower.add_member(["http://127.0.0.1:29999"])
            assert member.id in {m.id for m in members}
            ids = sorted(cluster.net.servers)
            settings = cluster_settings(
                tmp_path, ids, member.id, join_existing=True, advertise_client_urls=("http://127.0.0.1:3",)
            )
            settings.members = list(members)
            joiner = cluster.start(settings)
            await asyncio.wait_for(joiner.wait_started(), 10)
            assert cluster.net.snapshots_sent >= 1
            assert await _get(joiner, b"k") == b"v"
            # The v2 tree came with the snapshot, with the same index as everywhere else.
            assert joiner.v2store.get("/x", now_ns=0).node.value == "y"
            assert joiner.v2store.index == leader.v2store.index
            assert event.node.modified_index <= joiner.v2store.index
            await _put(leader, b"after", b"join")
            await cluster.wait_for(lambda: joiner.store.revision == leader.store.revision, "replication")
            assert await _get(joiner, b"after", serializable=True) == b"join"
            assert len(joiner.members) == 4
            assert joiner.members[member.id].client_urls == ("http://127.0.0.1:3",)

    asyncio.run(main())


def test_removing_the_leader_keeps_every_committed_write(tmp_path):
    async def main() -> None:
        async with running_cluster(tmp_path) as cluster:
            leader = await cluster.wait_leader()
            for i in range(20):
                await _put(leader, f"k{i}".encode(), b"v")
            await leader.remove_member(leader.member_id)
            await cluster.wait_for(lambda: leader.removed_from_cluster, "the removed leader to stop")
            new_leader = await cluster.wait_leader()
            assert new_leader.member_id != leader.member_id
            await _put(new_leader, b"after", b"removal")
            for server in _followers(cluster) + [new_leader]:
                assert leader.member_id not in server.members
                assert await _get(server, b"k19") == b"v"
                assert await _get(server, b"after") == b"removal"

    asyncio.run(main())


def test_membership_checks_answer_as_etcd(tmp_path):
    async def main() -> None:
        async with running_cluster(tmp_path) as cluster:
            leader = await cluster.wait_leader()
            taken = next(iter(leader.members.values())).peer_urls[0]
            with pytest.raises(errors.EtcdError, match="Peer URLs already exists"):
                await leader.add_member([taken])
            with pytest.raises(errors.EtcdError, match="given member URLs are invalid"):
                await leader.add_member(["not a url"])
            with pytest.raises(errors.EtcdError, match="member not found"):
                await leader.remove_member(0xDEAD)
            with pytest.raises(errors.EtcdError, match="can only promote a learner member"):
                await leader.promote_member(leader.member_id)
            learner, _ = await leader.add_member(["http://127.0.0.1:29998"], is_learner=True)
            with pytest.raises(errors.EtcdError, match="too many learner members"):
                await leader.add_member(["http://127.0.0.1:29997"], is_learner=True)
            with pytest.raises(errors.EtcdError, match="in sync with leader"):
                await leader.promote_member(learner.id)
            await leader.remove_member(learner.id)
            with pytest.raises(errors.EtcdError, match="member ID already exist"):
                check_add(leader.members, leader.removed, learner)  # a removed ID is refused for ever
            updated = await leader.update_member(leader.member_id, ["http://127.0.0.1:29996"])
            assert next(m for m in updated if m.id == leader.member_id).peer_urls == ("http://127.0.0.1:29996",)
            await cluster.wait_for(
                lambda: all(
                    s.members[leader.member_id].peer_urls == ("http://127.0.0.1:29996",)
                    for s in cluster.net.servers.values()
                ),
                "the update everywhere",
            )

    asyncio.run(main())


async def _leave_a_follower_behind_a_snapshot(cluster, writes: int):
    """Cut a follower off, write ``writes`` keys (k0.. with values 0..) and a v2 key, and wait until the
    leader has snapshotted past what the follower has: it can only catch up from the snapshot."""
    leader = await cluster.wait_leader()
    lagging = _followers(cluster)[0]
    cluster.net.isolate(lagging.member_id)
    for i in range(writes):
        await _put(leader, f"k{i}".encode(), str(i).encode())
    await leader.v2_propose(etcdserver_pb2.Request(Method="PUT", Path="/v2key", Val="z"))
    await cluster.wait_for(lambda: leader.snapshot_index > 20, "a snapshot on the leader")
    return leader, lagging


def test_a_lagging_follower_catches_up_from_a_snapshot(tmp_path, monkeypatch):
    monkeypatch.setattr(server_module, "SNAPSHOT_CATCH_UP_ENTRIES", 5)

    async def main() -> None:
        async with running_cluster(tmp_path, snapshot_count=20) as cluster:
            leader, lagging = await _leave_a_follower_behind_a_snapshot(cluster, 80)
            cluster.net.heal()
            await cluster.wait_for(lambda: lagging.v2_applied_index == leader.v2_applied_index, "catch-up")
            assert cluster.net.snapshots_sent >= 1
            assert await _get(lagging, b"k79", serializable=True) == b"79"
            assert lagging.v2store.get("/v2key", now_ns=0).node.value == "z"
            assert lagging.store.hash_kv(0) == leader.store.hash_kv(0)

    asyncio.run(main())


def test_leadership_moves_on_request(tmp_path):
    async def main() -> None:
        async with running_cluster(tmp_path) as cluster:
            leader = await cluster.wait_leader()
            target = _followers(cluster)[0]
            await leader.move_leader(target.member_id)
            assert target.is_leader()
            with pytest.raises(errors.EtcdError, match="not leader"):
                await leader.move_leader(target.member_id)
            await _put(target, b"k", b"v")

    asyncio.run(main())


def test_a_crash_while_installing_a_snapshot_recovers_from_the_received_file(tmp_path, monkeypatch):
    monkeypatch.setattr(server_module, "SNAPSHOT_CATCH_UP_ENTRIES", 5)

    async def main() -> None:
        async with running_cluster(tmp_path, snapshot_count=20) as cluster:
            leader, lagging = await _leave_a_follower_behind_a_snapshot(cluster, 60)
            with monkeypatch.context() as patch:
                real_replace = server_module.os.replace

                def crash(source, target):
                    if str(target) == str(lagging.paths.backend):
                        raise OSError("simulated crash before the received backend is in place")
                    real_replace(source, target)

                patch.setattr(server_module.os, "replace", crash)
                cluster.net.heal()
                with pytest.raises(BaseExceptionGroup) as crashed:
                    await asyncio.wait_for(cluster.tasks[lagging.member_id], 10)
                assert crashed.group_contains(OSError, match="simulated crash", depth=None)
            cluster.net.isolate(lagging.member_id)  # no second snapshot: the received file must serve
            reopened = EtcdServer(lagging.settings, cluster.net.transport(lagging.member_id))
            assert reopened.consistent_index > 20
            assert reopened.store.range(b"k59", b"").kvs[0].value == b"59"
            reopened.storage.close()
            reopened.backend.close()
            cluster.net.heal()
            restarted = cluster.start(lagging.settings)
            await asyncio.wait_for(restarted.wait_started(), 10)
            assert await _get(restarted, b"k59") == b"59"

    asyncio.run(main())

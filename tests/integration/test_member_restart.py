"""A member restarts from its data directory: a clean stop, a kill -9 (WAL tail replay), and after
snapshots released old WAL segments. Revisions, leases and compaction survive."""

from __future__ import annotations

import time

import grpc
from processes import start_member

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc


def _stubs(address: str):
    channel = grpc.insecure_channel(address)
    return channel, rpc_pb2_grpc.KVStub(channel), rpc_pb2_grpc.LeaseStub(channel)


def _fill(kv, count: int, prefix: bytes, batch: int = 100) -> None:
    for start in range(0, count, batch):
        ops = [
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=prefix + b"%07d" % i, value=b"v%d" % i))
            for i in range(start, min(count, start + batch))
        ]
        kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=10)


def test_restart_keeps_everything_after_clean_stop_and_kill(tmp_path):
    member = start_member("flotilla", tmp_path, "--snapshot-count", "500", "--max-txn-ops", "1000")
    try:
        channel, kv, lease = _stubs(member.address)
        _fill(kv, 20_000, b"k/")
        granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=300), timeout=5)
        kv.Put(rpc_pb2.PutRequest(key=b"leased", value=b"x", lease=granted.ID), timeout=5)
        for i in range(600):  # enough entries for a snapshot and WAL release
            kv.Put(rpc_pb2.PutRequest(key=b"hot", value=b"%d" % i), timeout=5)
        before = kv.Range(rpc_pb2.RangeRequest(key=b"hot"), timeout=5)
        kv.Compact(rpc_pb2.CompactionRequest(revision=before.header.revision - 10), timeout=5)
        channel.close()

        for restart in (member.stop, member.kill):
            restart()
            member.start()
            channel, kv, lease = _stubs(member.address)
            count = kv.Range(rpc_pb2.RangeRequest(key=b"k/", range_end=b"k0", count_only=True), timeout=10)
            assert count.count == 20_000
            hot = kv.Range(rpc_pb2.RangeRequest(key=b"hot"), timeout=5)
            assert hot.kvs[0].value == b"599" and hot.kvs[0].version == 600
            assert hot.header.revision == before.header.revision
            ttl = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=granted.ID, keys=True), timeout=5)
            assert ttl.keys == [b"leased"] and 0 < ttl.TTL <= 300
            try:
                kv.Range(rpc_pb2.RangeRequest(key=b"hot", revision=before.header.revision - 20), timeout=5)
                raise AssertionError("a compacted revision was served after restart")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.OUT_OF_RANGE
            channel.close()
    finally:
        member.stop()


def test_lease_remaining_ttl_survives_restart(tmp_path):
    """etcd resets a lease to its full TTL when leadership moves (#9395, #13294); a restarted single member
    is the same event. Flotilla checkpoints remaining TTLs, so the lease keeps counting down."""
    member = start_member("flotilla", tmp_path, "--experimental-lease-checkpoint-interval", "1s")
    try:
        channel, kv, lease = _stubs(member.address)
        granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), timeout=5)
        kv.Put(rpc_pb2.PutRequest(key=b"session", value=b"x", lease=granted.ID), timeout=5)
        time.sleep(4)  # a few checkpoints
        before = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=granted.ID), timeout=5).TTL
        channel.close()
        member.stop()
        member.start()
        channel, kv, lease = _stubs(member.address)
        after = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=granted.ID, keys=True), timeout=5)
        channel.close()
        assert after.keys == [b"session"]
        assert after.grantedTTL == 60
        assert after.TTL <= before + 1 < 60, f"TTL {before} before the restart, {after.TTL} after"
    finally:
        member.stop()

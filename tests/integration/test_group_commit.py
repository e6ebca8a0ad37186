"""Group commit: concurrent writes share fsyncs (every proposal pending when a WAL write starts goes into
the next single fsync), and /metrics reports it under etcd's metric names."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import grpc
from processes import start_member

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc

WRITES = 2000
CONCURRENCY = 64


def _metric(endpoint: str, name: str) -> float:
    text = urllib.request.urlopen(f"{endpoint}/metrics", timeout=5).read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


async def _write_concurrently(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        queue = list(range(WRITES))

        async def writer() -> None:
            while queue:
                i = queue.pop()
                await kv.Put(rpc_pb2.PutRequest(key=b"g/%05d" % i, value=b"v"), timeout=10)

        await asyncio.gather(*(writer() for _ in range(CONCURRENCY)))


def test_concurrent_writes_share_fsyncs(tmp_path):
    member = start_member("flotilla", tmp_path)
    try:
        before = _metric(member.endpoint, "etcd_disk_wal_fsync_duration_seconds_count")
        asyncio.run(_write_concurrently(member.address))
        fsyncs = _metric(member.endpoint, "etcd_disk_wal_fsync_duration_seconds_count") - before
        applied = _metric(member.endpoint, "etcd_server_proposals_applied_total")
        assert applied >= WRITES
        assert _metric(member.endpoint, "etcd_debugging_mvcc_keys_total") == WRITES
        assert 0 < fsyncs < WRITES / 2, f"{fsyncs:.0f} fsyncs for {WRITES} concurrent writes: no group commit"
    finally:
        member.stop()

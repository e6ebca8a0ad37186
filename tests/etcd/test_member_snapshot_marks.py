"""A snapshot's WAL mark counts at a restart only at or below the WAL's recorded commit (etcd's
ValidSnapshotEntries), and a commit-only hard state is written lazily (no fsync of its own): the member
must still record the snapshot's index as committed, or a restart falls back to an older snapshot whose
WAL segments are already released."""

from __future__ import annotations

import asyncio
from pathlib import Path

from member_harness import member_settings

from flotilla.etcd.api import rpc_pb2
from flotilla.etcd.server import EtcdServer
from flotilla.etcd.storage import MemberStorage, member_paths


def _settings(data_dir: Path):
    return member_settings(data_dir, snapshot_count=50)


async def _write_until_a_snapshot_then_stop(data_dir: Path, snapshots: int) -> int:
    """Write one key at a time; stop right after the write that made the ``snapshots``-th snapshot, so
    nothing written later carries its commit index into the WAL."""
    server = EtcdServer(_settings(data_dir))
    task = asyncio.create_task(server.run())
    await asyncio.wait_for(server.wait_started(), 10)
    taken, last, i = 0, server.snapshot_index, 0
    while taken < snapshots:
        await server.propose("put", rpc_pb2.PutRequest(key=b"k%d" % i, value=b"v"))
        i += 1
        while server._snapshotting:
            await asyncio.sleep(0.005)
        if server.snapshot_index != last:
            taken, last = taken + 1, server.snapshot_index
    snapshot_index = server.snapshot_index
    server.stop()
    await asyncio.wait_for(task, 10)
    return snapshot_index


def test_a_restart_starts_from_the_newest_snapshot(tmp_path):
    newest = asyncio.run(_write_until_a_snapshot_then_stop(tmp_path, 3))
    assert newest > 100
    storage, recovered = MemberStorage.open(member_paths(tmp_path))
    try:
        assert recovered.snapshot.index == newest
    finally:
        storage.close()


def test_the_member_restarts_with_every_key_after_snapshots(tmp_path):
    asyncio.run(_write_until_a_snapshot_then_stop(tmp_path, 4))

    async def count() -> tuple[int, int]:
        server = EtcdServer(_settings(tmp_path))
        task = asyncio.create_task(server.run())
        await asyncio.wait_for(server.wait_started(), 10)
        response = await server.range(rpc_pb2.RangeRequest(key=b"k", range_end=b"l", count_only=True))
        server.stop()
        await asyncio.wait_for(task, 10)
        return response.count, server.applied_index

    keys, applied = asyncio.run(count())
    assert keys > 150 and applied >= keys

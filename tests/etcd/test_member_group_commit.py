"""Group commit (issue: "every proposal pending when a write starts goes into the same fsync"): while one
WAL write is in progress, new proposals queue; the next Ready takes them all into one write and one fsync.
The WAL write is slowed down here so the proof does not depend on the machine's speed."""

from __future__ import annotations

import asyncio
import threading
import time

from flotilla.etcd.api import rpc_pb2
from flotilla.etcd.server import EtcdServer, Member, ServerSettings

MEMBER_ID = 0x4242
WRITES = 300


def _settings(data_dir) -> ServerSettings:
    return ServerSettings(
        name="m1",
        data_dir=data_dir,
        member_id=MEMBER_ID,
        cluster_id=0x77,
        members=[Member(MEMBER_ID, "m1", ("http://127.0.0.1:1",), ("http://127.0.0.1:2",))],
        heartbeat_interval_ms=10,
        election_timeout_ms=100,
        seed=3,
    )


def test_proposals_pending_during_a_write_share_the_next_fsync(tmp_path):
    async def main() -> list[int]:
        server = EtcdServer(_settings(tmp_path))
        batches: list[int] = []
        lock = threading.Lock()
        real_write_ahead = server.storage.write_ahead

        def slow_write_ahead(rd):
            if rd.entries:
                with lock:
                    batches.append(len(rd.entries))
                time.sleep(0.05)  # a slow disk: everything proposed meanwhile must wait for one fsync
            real_write_ahead(rd)

        server.storage.write_ahead = slow_write_ahead
        task = asyncio.create_task(server.run())
        await asyncio.wait_for(server.wait_started(), 10)
        batches.clear()
        puts = [
            server.propose("put", rpc_pb2.PutRequest(key=b"k%04d" % i, value=b"v")) for i in range(WRITES)
        ]
        responses = await asyncio.wait_for(asyncio.gather(*puts), 30)
        assert len({r.header.revision for r in responses}) == WRITES  # one revision each
        server.stop()
        await asyncio.wait_for(task, 10)
        return batches

    batches = asyncio.run(main())
    assert sum(batches) == WRITES
    # The first write may start with the first proposal alone; everything queued behind it goes together.
    assert len(batches) <= 3, f"{len(batches)} WAL writes for {WRITES} concurrent proposals: {batches}"

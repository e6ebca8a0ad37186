"""A correctness review of the store member, in-process: an ``EtcdServer`` on its own event loop over a
temp data directory, with faults injected at the boundaries (WAL tail, backend writes, the lessor's clock,
a watch stream nobody reads).

Tests marked ``xfail(strict=True)`` are findings: each reason names the bug and the proposed fix. They turn
into failures (XPASS) when the fix lands; then drop the marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from member_harness import WAIT_S, member_settings, running_member

from flotilla.backend.errors import BackendError
from flotilla.etcd import errors
from flotilla.etcd import server as server_module
from flotilla.etcd.api import rpc_pb2
from flotilla.etcd.server import EtcdServer
from flotilla.etcd.watch_service import MAX_QUEUED_RESPONSES, WatchStream
from flotilla.raft import ConfChange, ConfChangeType

_settings = member_settings
_running = running_member


async def _put(server: EtcdServer, key: bytes, value: bytes = b"v") -> rpc_pb2.PutResponse:
    return await asyncio.wait_for(server.propose("put", rpc_pb2.PutRequest(key=key, value=value)), WAIT_S)


async def _count(server: EtcdServer, key: bytes, range_end: bytes = b"") -> int:
    return (await server.range(rpc_pb2.RangeRequest(key=key, range_end=range_end, count_only=True))).count


def _reopen_count(data_dir: Path, key: bytes, range_end: bytes = b"", **overrides) -> int:
    async def main() -> int:
        async with _running(data_dir, **overrides) as (server, _):
            return await _count(server, key, range_end)

    return asyncio.run(main())


def _last_wal_segment(data_dir: Path) -> Path:
    return sorted((data_dir / "member" / "wal").glob("*.wal"))[-1]


# --- durability -------------------------------------------------------------------------------------------
def test_member_restarts_when_backend_is_ahead_of_the_wal_commit_index(tmp_path):
    async def write() -> None:
        async with _running(tmp_path) as (server, _):
            for i in range(5):
                await _put(server, b"k%d" % i)

    asyncio.run(write())
    # A torn tail: the last record (the HardState that committed the last put) never fully reached the
    # disk, while the backend already recorded that put as applied. The WAL repairs the tail.
    segment = _last_wal_segment(tmp_path)
    segment.write_bytes(segment.read_bytes()[:-3])
    assert _reopen_count(tmp_path, b"k", b"l") == 5


def test_member_failed_backend_commit_loses_no_acknowledged_write(tmp_path):
    async def write() -> None:
        server = EtcdServer(_settings(tmp_path))
        task = asyncio.create_task(server.run())
        await asyncio.wait_for(server.wait_started(), WAIT_S)
        real_write = server.backend.write
        failed: list[bool] = []

        def write_failing_once(batch, *, sync=False):
            if not failed and any(op.bucket == "key" for op in batch.ops):
                failed.append(True)
                raise BackendError("injected: no space left on device")
            return real_write(batch, sync=sync)

        server.backend.write = write_failing_once
        await _put(server, b"acknowledged")
        # The member may stop on a backend failure (fine) or retry; either way it then shuts down.
        done, _ = await asyncio.wait({task}, timeout=2.0)
        if not done:
            server.stop()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, WAIT_S)
        assert failed

    asyncio.run(write())
    assert _reopen_count(tmp_path, b"acknowledged") == 1


def test_member_refuses_a_backend_behind_its_snapshot(tmp_path):
    async def write() -> int:
        async with _running(tmp_path, snapshot_count=20) as (server, _):
            for i in range(60):
                await _put(server, b"k%03d" % i)
            for _ in range(100):
                if server.snapshot_index > 20:
                    break
                await asyncio.sleep(0.02)
            return server.snapshot_index

    assert asyncio.run(write()) > 20
    os.remove(tmp_path / "member" / "snap" / "db")  # the backend is gone; the WAL before the snapshot too
    try:
        count = _reopen_count(tmp_path, b"k", b"l", snapshot_count=20)
    except (BackendError, errors.EtcdError, RuntimeError, ValueError) as refusal:
        assert "db" in str(refusal)
        return
    assert count == 60, f"the member started with {count} of 60 acknowledged keys"


def test_member_membership_change_survives_restart(tmp_path):
    async def change() -> None:
        async with _running(tmp_path) as (server, _):
            server.node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 0x99))
            server.raft._wake.set()
            await _put(server, b"after-the-change")  # applied after the change: the change is applied
            assert 0x99 in server.conf_state().learners

    async def learners() -> frozenset[int]:
        async with _running(tmp_path) as (server, _):
            return server.conf_state().learners

    asyncio.run(change())
    assert 0x99 in asyncio.run(learners())


# --- linearizability --------------------------------------------------------------------------------------
def test_member_linearizable_reads_see_every_acknowledged_write(tmp_path):
    """Reads issued after a write was acknowledged see it, with reads and writes interleaved."""

    async def main() -> None:
        async with _running(tmp_path) as (server, _):

            async def writer(n: int) -> None:
                for i in range(30):
                    key = b"w%d/%03d" % (n, i)
                    await _put(server, key)
                    assert await _count(server, key) == 1
                    txn = rpc_pb2.TxnRequest(
                        success=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))]
                    )
                    assert (await server.txn(txn)).responses[0].response_range.count == 1

            await asyncio.gather(*(writer(n) for n in range(4)))

    asyncio.run(main())


# --- leases -----------------------------------------------------------------------------------------------
class _OffsetClock:
    """``time`` for server.py with a monotonic clock that can jump (a stalled loop, a long apply)."""

    def __init__(self, real) -> None:
        self._real = real
        self.offset_s = 0.0

    def monotonic(self) -> float:
        return self._real.monotonic() + self.offset_s

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_member_lease_grant_survives_a_stale_lessor_clock(tmp_path, monkeypatch):
    clock = _OffsetClock(server_module.time)
    monkeypatch.setattr(server_module, "time", clock)

    async def main() -> None:
        async with _running(tmp_path) as (server, task):
            real_grant = server.applier.lease_grant

            def grant_after_a_stall(request, now_s=None):
                clock.offset_s += 5.0  # the lessor last saw the clock 5 s ago (a long apply batch)
                return real_grant(request, now_s=now_s)

            server.applier.lease_grant = grant_after_a_stall
            request = rpc_pb2.LeaseGrantRequest(ID=7, TTL=3)
            granted = asyncio.ensure_future(server.propose("lease_grant", request))
            await asyncio.wait({granted, task}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
            assert not task.done(), f"the member died: {task.exception()!r}"
            assert (await granted).TTL == 3

    asyncio.run(main())


def test_member_keep_alive_and_time_to_live(tmp_path):
    """A granted lease is kept alive by the primary, reports its TTL, and its keys go with a revoke."""

    async def main() -> None:
        async with _running(tmp_path) as (server, _):
            await server.propose("lease_grant", rpc_pb2.LeaseGrantRequest(ID=9, TTL=30))
            await server.propose("put", rpc_pb2.PutRequest(key=b"leased", value=b"v", lease=9))
            assert server.lease_renew(9) == 30
            assert 28 <= server.lease_remaining(9) <= 30
            await server.propose("lease_revoke", rpc_pb2.LeaseRevokeRequest(ID=9))
            assert await _count(server, b"leased") == 0

    asyncio.run(main())


# --- watch ------------------------------------------------------------------------------------------------
def _watch_all(stream: WatchStream, start_revision: int = 0) -> None:
    create = rpc_pb2.WatchCreateRequest(key=b"k", range_end=b"l", start_revision=start_revision)
    stream.handle(rpc_pb2.WatchRequest(create_request=create))


def _queued(stream: WatchStream) -> list[rpc_pb2.WatchResponse]:
    return list(stream.queue._queue)  # the stream's outgoing responses, not yet sent


async def _put_many(server: EtcdServer, count: int) -> None:
    await asyncio.gather(*(_put(server, b"k%05d" % i, b"x" * 64) for i in range(count)))


def test_member_slow_watcher_gets_every_event_once(tmp_path):
    """A watcher whose stream falls behind (desynced) still gets each revision exactly once, in order."""

    async def main() -> None:
        async with _running(tmp_path) as (server, _):
            stream = WatchStream(server)
            _watch_all(stream)
            first = server.store.revision + 1
            await _put_many(server, MAX_QUEUED_RESPONSES + 600)
            last = server.store.revision
            revisions = []
            for _ in range(200):
                while not stream.queue.empty():
                    revisions += [e.kv.mod_revision for e in stream.queue.get_nowait().events]
                if revisions and revisions[-1] == last:
                    break
                await asyncio.sleep(0.02)
            assert revisions == list(range(first, last + 1))

    asyncio.run(main())


def test_member_watch_queue_of_a_stuck_client_stays_bounded(tmp_path):
    async def main() -> None:
        async with _running(tmp_path) as (server, _):
            stream = WatchStream(server)  # nobody reads its queue
            _watch_all(stream)
            await _put_many(server, 3500)
            await asyncio.sleep(0.5)  # several rounds of the sync loop
            queued_events = sum(len(r.events) for r in _queued(stream))
            assert queued_events <= MAX_QUEUED_RESPONSES + 1000, f"{queued_events} events buffered"

    asyncio.run(main())


def test_member_progress_notify_only_for_caught_up_watchers(tmp_path):
    async def main() -> None:
        async with _running(tmp_path) as (server, _):
            await _put_many(server, 1500)
            stream = WatchStream(server)
            create = rpc_pb2.WatchCreateRequest(
                key=b"k", range_end=b"l", start_revision=1, progress_notify=True
            )
            stream.handle(rpc_pb2.WatchRequest(create_request=create))
            seen = max(e.kv.mod_revision for r in _queued(stream) for e in r.events)
            assert seen < server.store.revision  # still catching up: one batch was sent so far
            stream.send_progress()
            progress = _queued(stream)[-1]
            assert progress.events or progress.header.revision <= seen, (
                f"progress at {progress.header.revision} while events up to {seen} were sent"
            )

    asyncio.run(main())


def test_member_watch_from_a_compacted_revision_is_cancelled(tmp_path):
    async def main() -> None:
        async with _running(tmp_path) as (server, _):
            await _put_many(server, 10)
            revision = server.store.revision
            await server.propose("compaction", rpc_pb2.CompactionRequest(revision=revision - 2))
            stream = WatchStream(server)
            _watch_all(stream, start_revision=2)
            created, cancelled = _queued(stream)
            assert created.created and cancelled.canceled
            assert cancelled.compact_revision == revision - 2

    asyncio.run(main())

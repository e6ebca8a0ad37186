"""An in-process single member for tests: ``EtcdServer`` over a temp data directory with fast timers."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

from flotilla.etcd.server import EtcdServer, Member, ServerSettings

MEMBER_ID = 0x1234
WAIT_S = 10.0


def member_settings(data_dir: Path, **overrides) -> ServerSettings:
    """One member, 10 ms heartbeats, 100 ms elections, 20 ms backend commits; ``overrides`` replace any."""
    values = dict(
        name="m1",
        data_dir=data_dir,
        member_id=MEMBER_ID,
        cluster_id=0x5678,
        members=[Member(MEMBER_ID, "m1", ("http://127.0.0.1:1",), ("http://127.0.0.1:2",))],
        heartbeat_interval_ms=10,
        election_timeout_ms=100,
        backend_commit_interval_s=0.02,
        seed=1,
    )
    values.update(overrides)
    return ServerSettings(**values)


@asynccontextmanager
async def running_member(data_dir: Path, **overrides):
    """A started member and its run task; stopped (final backend commit included) on exit."""
    server = EtcdServer(member_settings(data_dir, **overrides))
    task = asyncio.create_task(server.run())
    started = asyncio.create_task(server.wait_started())
    await asyncio.wait({task, started}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    assert started.done(), "the member did not start"
    try:
        yield server, task
    finally:
        server.stop()
        if not task.done():
            await asyncio.wait_for(asyncio.shield(task), WAIT_S)

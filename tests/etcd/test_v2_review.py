"""A review of the v2 API inside the member, in-process: an ``EtcdServer`` over a temp data directory,
and its HTTP app on a loopback port. Each test is a bug that was found: its docstring says how it showed.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web
from member_harness import WAIT_S, member_settings, running_member

from flotilla.etcd import raftnode
from flotilla.etcd.api import etcdserver_pb2
from flotilla.etcd.http import make_http_app
from flotilla.etcd.server import EtcdServer, Member
from flotilla.etcd.v2form import parse_form, parse_key_request
from flotilla.v2store import V2Store

_NS = 1_000_000_000
_settings = member_settings


@asynccontextmanager
async def _running(data_dir: Path, **overrides):
    async with running_member(data_dir, **overrides) as (server, _):
        yield server


@asynccontextmanager
async def _serving(server: EtcdServer):
    """The member's HTTP app (v2 on) on a free loopback port, as the member process runs it."""
    app = make_http_app(server, {}, None, enable_v2=True)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield runner, f"http://127.0.0.1:{port}"
    finally:
        await asyncio.wait_for(runner.cleanup(), WAIT_S)


async def _v2(server: EtcdServer, **fields):
    return await asyncio.wait_for(server.v2_propose(etcdserver_pb2.Request(**fields)), WAIT_S)


def _keys(server: EtcdServer) -> list[str]:
    event = server.v2store.get("/", recursive=True, sorted=True, now_ns=0)
    return [n.key for n in event.node.nodes or []]


# --- acknowledged writes across restarts -----------------------------------------------------------
def test_a_snapshot_during_restart_replay_keeps_every_v2_write(tmp_path, monkeypatch):
    """After a clean stop the backend's applied index is ahead of the WAL's commit index (a commit-only
    hard state is not written). A restart whose replay triggers a snapshot (here: a lower snapshot count)
    snapshotted the v2 tree under the backend's index while the tree had not yet re-applied the last
    entries: the next restart started from that snapshot and the last acknowledged write was gone."""
    monkeypatch.setattr(raftnode, "INLINE_WRITE_MAX_S", 0.0)  # a slow disk: WAL writes in a thread

    async def first() -> None:
        async with _running(tmp_path, snapshot_count=100_000) as server:
            for i in range(30):
                await _v2(server, Method="PUT", Path=f"/k{i:02d}", Val="v")

    async def second() -> None:
        async with _running(tmp_path, snapshot_count=5) as server:
            await asyncio.sleep(0.3)
            for i in range(3):  # later writes make the snapshot's WAL mark valid for the next start
                await _v2(server, Method="PUT", Path=f"/later{i}", Val="v")
            assert server.snapshot_index > 1

    async def third() -> list[str]:
        async with _running(tmp_path) as server:
            return _keys(server)

    asyncio.run(first())
    asyncio.run(second())
    keys = asyncio.run(third())
    assert keys == [f"/k{i:02d}" for i in range(30)] + ["/later0", "/later1", "/later2"]


# --- error paths that stopped the apply loop ---------------------------------------------------------
DEEP_KEY = "/d" * 1500  # deeper than Python's default recursion limit; etcd has no depth limit


def test_a_deep_tree_snapshots_and_restores():
    """The snapshot nested every directory in its parent's JSON: a deep tree could not be saved (the
    member's snapshot task failed) nor read back."""
    store = V2Store()
    store.set(DEEP_KEY, value="bottom", expire_ns=2_000_000_000 * _NS, now_ns=0)
    store.set("/a/b", value="1", now_ns=0)
    store.set("/a/_c", value="2", now_ns=0)
    restored = V2Store.restore(store.save())
    assert restored.index == store.index
    assert restored.get(DEEP_KEY, now_ns=0).node.value == "bottom"
    top = restored.get("/", sorted=True, now_ns=0).node.nodes
    assert [n.key for n in top] == ["/a", "/d"]
    assert [n.key for n in restored.get("/a", now_ns=0).node.nodes] == ["/a/b"]
    assert [e.node.key for e in restored.delete_expired(2_000_000_001 * _NS)] == [DEEP_KEY]


def test_a_recursive_delete_of_a_deep_tree_leaves_the_member_running(tmp_path):
    """Removing a subtree recursed once per level: deleting a deep directory raised RecursionError inside
    the apply loop, which stopped the member; the entry, replayed from the WAL, stopped it again at every
    restart. Any v2 client could do it with one PUT and one DELETE."""

    async def main() -> None:
        async with _running(tmp_path) as server:
            watcher = server.v2store.watch(DEEP_KEY)
            await _v2(server, Method="PUT", Path=DEEP_KEY, Val="x")
            await _v2(server, Method="PUT", Path=DEEP_KEY, Val="y")
            event = await _v2(server, Method="DELETE", Path="/d", Recursive=True)
            assert event.action == "delete" and event.node.dir
            assert watcher.removed and [e.action for e in watcher.pending] == ["set"]
            assert _keys(server) == []
            await _v2(server, Method="PUT", Path="/after", Val="ok")
        async with _running(tmp_path) as server:
            assert _keys(server) == ["/after"]

    asyncio.run(main())


# --- watches -------------------------------------------------------------------------------------------
async def _read_until_end(response: aiohttp.ClientResponse, timeout_s: float) -> list[bytes]:
    """The lines of a watch response; fails if it has not ended within ``timeout_s``."""
    lines = []

    async def read() -> None:
        async for line in response.content:
            lines.append(line)

    try:
        await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"the watch response did not end ({len(lines)} lines read)") from None
    return lines


def test_a_stream_watcher_dropped_for_falling_behind_ends_its_response(tmp_path):
    """etcd drops a watcher whose 100-event buffer is full and closes its channel, which ends the
    stream: the client sees the end and watches again. Ours kept the response open, delivering nothing
    more, so a streaming client silently missed every later event. (One SYNC that expires more than 100
    keys fills the buffer at once.)"""

    async def main() -> None:
        async with _running(tmp_path) as server, _serving(server) as (_, url):
            later = time.time_ns() + 3600 * _NS
            for i in range(120):
                await _v2(server, Method="PUT", Path=f"/q/k{i:03d}", Val="v", Expiration=later)
            async with aiohttp.ClientSession() as session:
                watch_url = f"{url}/v2/keys/q?wait=true&recursive=true&stream=true"
                async with session.get(watch_url) as response:
                    assert response.status == 200
                    expired = await _v2(server, Method="SYNC", Time=later + _NS)
                    assert len(expired) == 120
                    lines = await _read_until_end(response, 3.0)
                assert 0 < len(lines) <= 100
                await asyncio.sleep(0.05)
                assert server.v2store.watcher_count == 0

    asyncio.run(main())


def test_an_open_watch_does_not_hold_up_the_member_stopping(tmp_path):
    """Stopping the member's HTTP side waits for running handlers (aiohttp: up to 60 s, then another 60 s
    after cancelling): a v2 watch nobody wrote to kept a stopping member alive for two minutes, so SIGTERM
    did not stop it. etcd closes its watches and exits at once."""

    async def main() -> None:
        async with _running(tmp_path) as server, _serving(server) as (runner, url):
            async with aiohttp.ClientSession() as session:
                waits = [
                    session.get(f"{url}/v2/keys/w?wait=true"),
                    session.get(f"{url}/v2/keys/s?wait=true&stream=true"),
                ]
                await _v2(server, Method="PUT", Path="/h", Val="v")
                # A stream resumed from the history stays open after its one event, as in etcd.
                waits.append(session.get(f"{url}/v2/keys/h?wait=true&stream=true&waitIndex=1"))
                responses = [await w for w in waits]
                assert [r.status for r in responses] == [200, 200, 200]
                await asyncio.sleep(0.1)
                started = time.monotonic()
                await asyncio.wait_for(runner.cleanup(), 5.0)
                assert time.monotonic() - started < 3.0
                for response in responses:
                    await _read_until_end(response, 1.0)
                    response.release()

    asyncio.run(main())


# --- request parsing -----------------------------------------------------------------------------------
def _int64(value: int) -> int:
    return (value + (1 << 63)) % (1 << 64) - (1 << 63)


def test_a_ttl_past_int64_wraps_around_as_in_go():
    """etcd computes the expiry as ``Now().Add(Duration(ttl) * Second).UnixNano()``, which wraps around
    int64: ``ttl=8000000000`` makes a permanent key and ``ttl=18446744073709551615`` one that expired a
    second ago. Ours overflowed the protobuf field: 500 Internal Server Error."""
    now = 1_763_800_000 * _NS
    for ttl in (8_000_000_000, 9_999_999_999, (1 << 64) - 1):
        request = parse_key_request("PUT", "/t", {"value": ["v"], "ttl": [str(ttl)]}, now).request
        assert request.Expiration == _int64(now + ttl * _NS)
    assert parse_key_request("PUT", "/t", {"ttl": [str((1 << 64) - 1)]}, now).request.Expiration == now - _NS


def test_raw_non_utf8_bytes_in_a_form_body_are_replaced():
    """Go keeps the bytes and its JSON encoder writes U+FFFD for them; ours handed a lone surrogate to
    protobuf: 500 Internal Server Error."""
    form = parse_form("PUT", "", "application/x-www-form-urlencoded", b"value=a\xffb&k\xfe=1")
    assert form["value"] == ["a\ufffdb"]
    assert parse_key_request("PUT", "/raw", form, 0).request.Val == "a\ufffdb"
    assert parse_form("PUT", "", "application/x-www-form-urlencoded", "value=é".encode())["value"] == ["é"]


def test_odd_ttls_and_bytes_over_http(tmp_path):
    async def main() -> None:
        async with _running(tmp_path) as server, _serving(server) as (_, url):
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            async with aiohttp.ClientSession(headers=form) as session:
                async with session.put(f"{url}/v2/keys/far", data="value=v&ttl=8000000000") as response:
                    assert response.status == 201
                    assert "ttl" not in (await response.json())["node"]
                past = f"value=v&ttl={(1 << 64) - 1}"
                async with session.put(f"{url}/v2/keys/past", data=past) as response:
                    assert response.status == 201
                    assert (await response.json())["node"]["ttl"] == -1
                async with session.put(f"{url}/v2/keys/raw", data=b"value=a\xffb") as response:
                    assert response.status == 201
                    assert (await response.json())["node"]["value"] == "a\ufffdb"

    asyncio.run(main())


def test_v2_indexes_do_not_depend_on_the_initial_cluster_flag_at_a_restart(tmp_path):
    """Before its first snapshot a restarting member rebuilds the v2 tree from the WAL on top of the
    indexes etcd spends on membership, counted from ``--initial-cluster`` — a flag etcd ignores at a
    restart. Given another member list, every replayed write got another index than the one its client
    was told (and a compareAndSwap on prevIndex then failed)."""
    other = Member(0x99, "m2", ("http://127.0.0.1:3",), ("http://127.0.0.1:4",))

    async def main() -> None:
        async with _running(tmp_path) as server:
            told = (await _v2(server, Method="PUT", Path="/a", Val="v")).node.modified_index
        members = [*_settings(tmp_path).members, other]
        async with _running(tmp_path, members=members) as server:
            assert server.v2store.get("/a", now_ns=0).node.modified_index == told

    asyncio.run(main())


# etcd 3.4.23's answers to POST /v2/members bodies of the wrong JSON types (curl, 2026-11).
_STRUCT = 'struct { PeerURLs []string "json:\\"peerURLs\\"" }'
_MEMBER_BODIES = [
    ('{"peerURLs":[1]}', "json: cannot unmarshal number into Go struct field .peerURLs of type string"),
    ('{"peerURLs":[true]}', "json: cannot unmarshal bool into Go struct field .peerURLs of type string"),
    (
        '{"peerURLs":"http://1.2.3.4:1"}',
        "json: cannot unmarshal string into Go struct field .peerURLs of type []string",
    ),
    ('{"peerURLs":{"a":1}}', "json: cannot unmarshal object into Go struct field .peerURLs of type []string"),
    ('{"peerURLs":[null]}', "URL scheme must be http, https, unix, or unixs: "),
    ("[1]", f"json: cannot unmarshal array into Go value of type {_STRUCT}"),
    ('"x"', f"json: cannot unmarshal string into Go value of type {_STRUCT}"),
]


def test_members_bodies_of_other_json_types_are_go_errors_not_500s(tmp_path):
    """A peer URL that was not a string (a number, null) was a 500 from an AttributeError; other types
    gave other messages than Go's encoding/json. Go also matches the field name without regard to case."""

    async def main() -> None:
        async with _running(tmp_path) as server, _serving(server) as (_, url):
            headers = {"Content-Type": "application/json"}
            async with aiohttp.ClientSession(headers=headers) as session:
                for body, message in _MEMBER_BODIES:
                    async with session.post(f"{url}/v2/members", data=body) as response:
                        assert (response.status, await response.json(content_type=None)) == (
                            400,
                            {"message": message},
                        ), body
                body = '{"PEERURLS":["http://1.2.3.4:5"]}'
                async with session.post(f"{url}/v2/members", data=body) as response:
                    assert response.status == 201  # past every check: added, as etcd adds it

    asyncio.run(main())

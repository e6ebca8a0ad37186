"""`flotilla etcd --proxy on|readonly`, etcd 3.4's v2 proxy, as a subprocess in front of:

- a 3-member cluster of Debian's etcd: v2 requests with plain HTTP and Debian's etcdctl answered as the
  members answer them, watches (long-poll and ``stream=true``) streaming through, the proxy's own answers
  (503, 502, 501, CORS preflight, path redirect, ``/v2/config/local/proxy``) the same as Debian's
  ``etcd --proxy on`` gives, a member down, every member down, read-only mode, a restart from the data
  directory without the cluster flags;
- a fake member in this process that shows what the proxy sends and how it streams (headers, chunks, a
  client going away, the read timeout);
- a 3-member Flotilla cluster, and a member beyond a discovery token's size becoming a proxy.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import aiohttp
import pytest
from aiohttp import web
from processes import REAL_ETCD, MemberProcess, etcdctl, free_port, real_etcd_available, start_cluster

from flotilla.etcd.proxy import ProxyDirector, cluster_from_members

needs_etcd = pytest.mark.skipif(not real_etcd_available(), reason="Debian's etcd/etcdctl not installed")
PROXY_READY = "v2 proxy started listening on client requests on"


class Proxy:
    """A proxy process: ours (``python -m flotilla etcd``) or, with ``real=True``, Debian's etcd."""

    def __init__(self, data_dir, *flags: str, real: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        program = [REAL_ETCD] if real else [sys.executable, "-m", "flotilla", "etcd"]
        self.command = [*program, "--data-dir", str(data_dir), "--listen-client-urls", self.url, *flags]
        self.proc: subprocess.Popen | None = None
        self.log: list[str] = []

    def start(self) -> Proxy:
        self.proc = subprocess.Popen(
            self.command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        ready = threading.Event()

        def read() -> None:
            for line in self.proc.stderr:
                self.log.append(line)
                if PROXY_READY in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30):
            self.stop()
            raise AssertionError("".join(self.log[-20:]))
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _http(method: str, url: str, data: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one request; urllib follows no redirect here."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


# etcdctl v2 asks for the members and then talks to them directly unless told --no-sync: with it, every
# etcdctl request below goes through the proxy.


def _initial_cluster(members) -> str:
    return ",".join(f"{m.name}={m.peer_url}" for m in members)


# ---------------------------------------------------------------------------------------------------------
# The director and the member list, without processes


def test_the_director_keeps_one_order_and_sets_failed_endpoints_aside():
    now = [100.0]
    director = ProxyDirector(failure_wait_s=5.0, rng=random.Random(7), clock=lambda: now[0])
    assert director.endpoints() == []
    director.replace(["http://a", "http://b", "http://c"])
    order = director.endpoints()
    assert sorted(order) == ["http://a", "http://b", "http://c"]
    assert director.endpoints() == order  # sticky: the same member until the next refresh
    director.failed(order[0])
    assert director.endpoints() == order[1:]
    now[0] += 4.9
    assert director.endpoints() == order[1:]
    now[0] += 0.2
    assert director.endpoints() == order  # the failure wait is over: retried
    director.failed(order[1])
    director.replace(order)  # a refresh makes every endpoint available again, as etcd's does
    assert sorted(director.endpoints()) == sorted(order)
    director.replace([])  # the members could not be asked: nothing to forward to
    assert director.endpoints() == []


def test_the_member_list_of_a_peer_port_gives_client_and_peer_urls():
    debian = [  # Debian's etcd: numeric ids; a member added but not started has no client URL yet
        {"id": 1181037110240914680, "peerURLs": ["http://p2", "http://p1"], "name": "m1",
         "clientURLs": ["http://c1"]},
        {"id": 2245915390377592456, "peerURLs": ["http://p3"], "name": "", "clientURLs": []},
    ]  # fmt: skip
    assert cluster_from_members(debian) == (["http://c1"], ["http://p1", "http://p2", "http://p3"])
    flotilla = [{"id": "5d37a776ec51a", "name": "m1", "peerURLs": ["http://p"], "clientURLs": ["http://c"]}]
    assert cluster_from_members(flotilla) == (["http://c"], ["http://p"])
    with pytest.raises(ValueError):
        cluster_from_members({"members": []})


# ---------------------------------------------------------------------------------------------------------
# In front of Debian's etcd


@pytest.fixture(scope="module")
def etcd_cluster(tmp_path_factory):
    """A cluster the tests share: they leave its members running."""
    members = start_cluster("etcd", tmp_path_factory.mktemp("etcd"), 3, "--enable-v2=true")
    yield members
    for member in members:
        member.kill()


@pytest.fixture
def etcd_cluster_to_kill(tmp_path):
    members = start_cluster("etcd", tmp_path / "cluster", 3, "--enable-v2=true")
    yield members
    for member in members:
        member.kill()


def _same_answer(proxy_url: str, member_url: str, method: str, path: str, data: bytes | None = None):
    through = _http(method, proxy_url + path, data)
    direct = _http(method, member_url + path, data)
    assert through[0] == direct[0], path
    assert json.loads(through[2]) == json.loads(direct[2]), path
    for header in ("Content-Type", "X-Etcd-Cluster-Id", "X-Etcd-Index"):
        assert through[1].get(header) == direct[1].get(header), (path, header)
    return through


@needs_etcd
def test_requests_pass_through_as_a_member_answers_them(etcd_cluster, tmp_path):
    member = etcd_cluster[0]
    with Proxy(
        tmp_path / "proxy", "--proxy", "on", "--initial-cluster", _initial_cluster(etcd_cluster)
    ) as proxy:
        assert etcdctl(proxy.url, "--no-sync", "set", "/via-proxy", "yes", api="2").stdout == "yes\n"
        assert etcdctl(proxy.url, "--no-sync", "get", "/via-proxy", api="2").stdout == "yes\n"
        assert etcdctl(member.endpoint, "get", "/via-proxy", api="2").stdout == "yes\n"
        assert etcdctl(proxy.url, "--no-sync", "mkdir", "/dir", api="2").returncode == 0
        assert "/dir" in etcdctl(proxy.url, "--no-sync", "ls", api="2").stdout
        status, headers, body = _http("PUT", f"{proxy.url}/v2/keys/created?prevExist=false", b"value=1")
        assert status == 201 and json.loads(body)["action"] == "create"
        # etcd's own answers, as a member gives them (the same member: reads need not be quorum reads)
        for path in ("/v2/keys/via-proxy", "/v2/keys/?recursive=true&sorted=true", "/v2/keys/missing",
                     "/v2/keys/via-proxy/below", "/v2/members", "/version"):  # fmt: skip
            _same_answer(proxy.url, member.endpoint, "GET", path)
        status, _, body = _same_answer(proxy.url, member.endpoint, "PUT", "/v2/keys/dir", b"value=x")
        assert status == 403 and json.loads(body)["errorCode"] == 102
        # The members' client URLs are what the proxy uses.
        status, _, body = _http("GET", f"{proxy.url}/v2/config/local/proxy")
        assert sorted(json.loads(body)["endpoints"]) == sorted(m.endpoint for m in etcd_cluster)
        # Its own metrics, as etcd's proxy counts them.
        metrics = _http("GET", f"{proxy.url}/metrics")[2].decode()
        assert 'etcd_proxy_requests_total{method="GET"}' in metrics
        assert 'etcd_proxy_handled_total{code="201",method="PUT"}' in metrics
    saved = json.loads((tmp_path / "proxy" / "proxy" / "cluster").read_text())
    assert saved == {"PeerURLs": sorted(m.peer_url for m in etcd_cluster)}


async def _stream_events(url: str, writer_url: str, count: int) -> list[tuple[float, dict]]:
    """Open a v2 stream watch at ``url``, make ``count`` changes one by one through ``writer_url``, and
    return each event with the time it arrived (it must arrive before the next change is made)."""
    events: list[tuple[float, dict]] = []
    async with aiohttp.ClientSession() as session:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=20)) as response:
            assert response.status == 200
            for i in range(count):
                async with session.put(writer_url, data={"value": str(i)}) as put:
                    assert put.status in (200, 201)
                line = await asyncio.wait_for(response.content.readline(), 5)
                events.append((time.monotonic(), json.loads(line)))
    return events


@needs_etcd
def test_watches_stream_through(etcd_cluster, tmp_path):
    with Proxy(
        tmp_path / "proxy", "--proxy", "on", "--initial-cluster", _initial_cluster(etcd_cluster)
    ) as proxy:
        # A long-poll watch is answered when the change happens, not before.
        answers: list[tuple] = []
        waiter = threading.Thread(
            target=lambda: answers.append(_http("GET", f"{proxy.url}/v2/keys/w?wait=true"))
        )
        waiter.start()
        time.sleep(0.5)
        assert not answers
        _http("PUT", f"{etcd_cluster[1].endpoint}/v2/keys/w", b"value=changed")
        waiter.join(10)
        status, headers, body = answers[0]
        assert status == 200 and json.loads(body)["node"]["value"] == "changed"
        assert headers["X-Etcd-Index"]
        # A stream watch: every event passes as it happens, on one response.
        events = asyncio.run(
            _stream_events(f"{proxy.url}/v2/keys/s?wait=true&stream=true", f"{proxy.url}/v2/keys/s", 3)
        )
        assert [e["node"]["value"] for _, e in events] == ["0", "1", "2"]
        # Debian's etcdctl watch through the proxy.
        watch = subprocess.Popen(
            ["/usr/bin/etcdctl", f"--endpoints={proxy.url}", "--no-sync", "watch", "/etcdctl-w"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={"ETCDCTL_API": "2"},
        )  # fmt: skip
        try:
            time.sleep(0.5)
            _http("PUT", f"{etcd_cluster[2].endpoint}/v2/keys/etcdctl-w", b"value=seen")
            out, err = watch.communicate(timeout=10)
        finally:
            watch.kill()
        assert out == "seen\n", err


@needs_etcd
def test_the_proxys_own_answers_are_etcds(etcd_cluster_to_kill, tmp_path):
    """503, 502, 501, the CORS preflight, the path redirect: the same statuses, bodies and headers
    (but Date, Server) as Debian's etcd in proxy mode gives."""
    flags = ("--initial-cluster", _initial_cluster(etcd_cluster_to_kill), "--proxy-failure-wait", "60000")
    ours = Proxy(tmp_path / "ours", "--proxy", "on", *flags).start()
    real = Proxy(tmp_path / "real", "--proxy", "on", *flags, real=True).start()
    ours_ro = Proxy(tmp_path / "ours-ro", "--proxy", "readonly", *flags).start()
    real_ro = Proxy(tmp_path / "real-ro", "--proxy", "readonly", *flags, real=True).start()

    def same(proxies, method, path, data=None, headers=None):
        answers = [_http(method, p.url + path, data, headers) for p in proxies]
        (s1, h1, b1), (s2, h2, b2) = answers
        assert (s1, b1) == (s2, b2), (method, path)
        skip = {"date", "server", "content-length", "transfer-encoding", "x-raft-index", "x-raft-term"}
        assert sorted((k, v) for k, v in h1.items() if k.lower() not in skip) == sorted(
            (k, v) for k, v in h2.items() if k.lower() not in skip
        ), (method, path)
        return s1, b1

    try:
        assert _http("PUT", f"{ours.url}/v2/keys/k", b"value=1")[0] == 201
        assert same((ours, real), "GET", "/v2/keys/k?quorum=true")[0] == 200
        assert same((ours, real), "OPTIONS", "/v2/keys/k")[0] == 200
        assert same((ours, real), "GET", "/v2//keys/k")[0] == 301
        assert same((ours, real), "POST", "/v2/config/local/proxy")[0] == 405
        assert same((ours_ro, real_ro), "PUT", "/v2/keys/k", b"value=2")[0] == 501
        assert same((ours_ro, real_ro), "OPTIONS", "/v2/keys/k")[0] == 501
        assert same((ours_ro, real_ro), "GET", "/v2/keys/k")[0] == 200
        # One member down: requests still succeed (the failed one is set aside).
        etcd_cluster_to_kill[0].kill()
        for _ in range(4):
            for proxy in (ours, ours_ro):
                assert _http("GET", f"{proxy.url}/v2/keys/k")[0] == 200
        # Every member down: first each one is tried (502), then none is left (503).
        for member in etcd_cluster_to_kill:
            member.kill()
        # (How many were tried depends on which member each proxy had set aside already.)
        for proxy in (ours, real):
            status, headers, body = _http("GET", f"{proxy.url}/v2/keys/k")
            assert status == 502 and headers["Content-Type"] == "application/json"
            assert re.fullmatch(
                rb'\{"message":"httpproxy: unable to get response from [23] endpoint\(s\)"\}', body
            )
        status, body = same((ours, real), "GET", "/v2/keys/k")
        assert (status, body) == (503, b'{"message":"httpproxy: zero endpoints currently available"}')
    finally:
        for proxy in (ours, real, ours_ro, real_ro):
            proxy.stop()


@needs_etcd
def test_a_readonly_proxy_restarts_from_its_data_dir(etcd_cluster, tmp_path):
    with Proxy(
        tmp_path / "ro", "--proxy", "readonly", "--initial-cluster", _initial_cluster(etcd_cluster)
    ) as ro:
        assert _http("PUT", f"{ro.url}/v2/keys/x", b"value=1")[0] == 501
        assert etcdctl(ro.url, "--no-sync", "set", "/x", "1", api="2").returncode != 0
        assert _http("GET", f"{ro.url}/v2/keys/")[0] == 200
    # Restarted without --initial-cluster: the saved cluster is used.
    with Proxy(tmp_path / "ro", "--proxy", "on") as again:
        assert any("from cluster file" in line for line in again.log)
        assert etcdctl(again.url, "--no-sync", "set", "/after-restart", "1", api="2").stdout == "1\n"
        assert etcdctl(etcd_cluster[1].endpoint, "get", "/after-restart", api="2").stdout == "1\n"


# ---------------------------------------------------------------------------------------------------------
# In front of a fake member: what goes over the wire


class FakeMember:
    """A member's peer port (``/members``) and client port in a thread of this process: ``/echo``
    answers with what it received, ``/chunks`` sends three chunks 0.3 s apart, ``/hang`` waits and
    records being cancelled (its client went away)."""

    def __init__(self) -> None:
        self.peer_port, self.client_port = free_port(), free_port()
        self.peer_url = f"http://127.0.0.1:{self.peer_port}"
        self.client_url = f"http://127.0.0.1:{self.client_port}"
        self.hang_cancelled = threading.Event()
        self.client_urls = [self.client_url]  # what /members lists; None: /members fails
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _members(self, request):
        if self.client_urls is None:
            return web.Response(status=500, text="no leader")
        member = {"id": 1, "name": "fake", "peerURLs": [self.peer_url], "clientURLs": self.client_urls}
        return web.json_response([member], headers={"X-Etcd-Cluster-ID": "1"})

    async def _echo(self, request):
        body = await request.read()
        headers = [[k, v] for k, v in request.headers.items()]
        return web.json_response({"path": request.raw_path, "headers": headers, "body": body.decode()})

    async def _chunks(self, request):
        response = web.StreamResponse()
        await response.prepare(request)
        for i in range(3):
            await response.write(f"chunk{i}\n".encode())
            await asyncio.sleep(0.3)
        return response

    async def _hang(self, request):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.hang_cancelled.set()
            raise
        return web.Response(text="late")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        peer = web.Application()
        peer.router.add_get("/members", self._members)
        client = web.Application()
        client.router.add_route("*", "/echo", self._echo)
        client.router.add_get("/chunks", self._chunks)
        client.router.add_get("/hang", self._hang)
        self._runners = [web.AppRunner(peer), web.AppRunner(client, handler_cancellation=True)]
        for runner, port in zip(self._runners, (self.peer_port, self.client_port), strict=True):
            self._loop.run_until_complete(runner.setup())
            self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        self._started.set()
        self._loop.run_forever()
        for runner in self._runners:
            self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> FakeMember:
        self._thread.start()
        assert self._started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _first_chunks(url: str) -> list[tuple[float, bytes]]:
    arrivals = []
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        async for chunk in response.content.iter_any():
            arrivals.append((time.monotonic(), chunk))
    return arrivals


async def _give_up_after(url: str, seconds: float) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TimeoutError):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=seconds)) as response:
                await response.read()


def test_what_the_proxy_sends_and_how_it_streams(tmp_path):
    with FakeMember() as member:
        flags = (
            "--proxy",
            "on",
            "--initial-cluster",
            f"fake={member.peer_url}",
            "--proxy-read-timeout",
            "2000",
        )
        with Proxy(tmp_path / "p", *flags) as proxy:
            headers = {"X-Forwarded-For": "10.0.0.1", "Connection": "keep-alive", "Keep-Alive": "timeout=5",
                       "Te": "trailers", "Proxy-Authorization": "secret", "X-Custom": "kept"}  # fmt: skip
            status, _, body = _http("POST", f"{proxy.url}/echo?a=%2Fb&c=d", b"value=x", headers)
            seen = json.loads(body)
            sent = {k.lower(): v for k, v in seen["headers"]}
            assert status == 200 and seen["path"] == "/echo?a=%2Fb&c=d" and seen["body"] == "value=x"
            assert sent["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
            assert sent["x-custom"] == "kept" and sent["host"] == f"127.0.0.1:{proxy.port}"
            assert not {"keep-alive", "te", "proxy-authorization"} & set(sent)
            # Chunks are passed on as they come, not when the answer is complete.
            arrivals = asyncio.run(_first_chunks(f"{proxy.url}/chunks"))
            assert b"".join(c for _, c in arrivals) == b"chunk0\nchunk1\nchunk2\n"
            assert arrivals[-1][0] - arrivals[0][0] > 0.4
            # A client that goes away: the proxy lets go of the member's request too.
            asyncio.run(_give_up_after(f"{proxy.url}/hang", 0.5))
            assert member.hang_cancelled.wait(5)
            # --proxy-read-timeout: a member silent for longer fails the request (etcd's 502).
            started = time.monotonic()
            status, _, body = _http("GET", f"{proxy.url}/hang")
            assert 1.5 < time.monotonic() - started < 8
            assert (status, body) == (
                502,
                b'{"message":"httpproxy: unable to get response from 1 endpoint(s)"}',
            )


def _wait_endpoints(proxy: Proxy, expected: list[str]) -> None:
    deadline = time.monotonic() + 5
    while json.loads(_http("GET", f"{proxy.url}/v2/config/local/proxy")[2])["endpoints"] != expected:
        assert time.monotonic() < deadline, f"endpoints never became {expected}"
        time.sleep(0.05)


def test_the_member_list_is_refreshed(tmp_path):
    with FakeMember() as member:
        flags = (
            "--proxy",
            "on",
            "--initial-cluster",
            f"fake={member.peer_url}",
            "--proxy-refresh-interval",
            "100",
        )
        with Proxy(tmp_path / "p", *flags) as proxy:
            assert _http("GET", f"{proxy.url}/echo")[0] == 200
            elsewhere = f"http://127.0.0.1:{free_port()}"
            member.client_urls = [elsewhere]
            _wait_endpoints(proxy, [elsewhere])
            member.client_urls = [member.client_url]
            _wait_endpoints(proxy, [member.client_url])
            # The members cannot be asked: as etcd, the proxy forgets them (503) until they answer again.
            member.client_urls = None
            _wait_endpoints(proxy, [])
            status, _, body = _http("GET", f"{proxy.url}/echo")
            assert (status, body) == (503, b'{"message":"httpproxy: zero endpoints currently available"}')
            member.client_urls = [member.client_url]
            _wait_endpoints(proxy, [member.client_url])
            assert _http("GET", f"{proxy.url}/echo")[0] == 200


# ---------------------------------------------------------------------------------------------------------
# In front of Flotilla members


@pytest.fixture
def flotilla_cluster(tmp_path):
    members = start_cluster("flotilla", tmp_path / "cluster", 3, "--enable-v2=true")
    yield members
    for member in members:
        member.kill()


@needs_etcd
def test_requests_pass_through_to_a_flotilla_cluster(flotilla_cluster, tmp_path):
    with Proxy(
        tmp_path / "proxy", "--proxy", "on", "--initial-cluster", _initial_cluster(flotilla_cluster)
    ) as proxy:
        assert etcdctl(proxy.url, "--no-sync", "set", "/via-proxy", "yes", api="2").stdout == "yes\n"
        assert etcdctl(flotilla_cluster[2].endpoint, "get", "/via-proxy", api="2").stdout == "yes\n"
        endpoints = json.loads(_http("GET", f"{proxy.url}/v2/config/local/proxy")[2])["endpoints"]
        assert sorted(endpoints) == sorted(m.endpoint for m in flotilla_cluster)
        flotilla_cluster[0].kill()
        for _ in range(5):
            assert _http("GET", f"{proxy.url}/v2/keys/via-proxy")[0] == 200


@needs_etcd
def test_a_member_beyond_the_discovery_size_becomes_a_proxy(tmp_path):
    service = subprocess.Popen(
        [sys.executable, "-m", "flotilla", "discovery", "--listen-addr", "127.0.0.1:0", "--data-dir",
         str(tmp_path / "discovery")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    members: list[MemberProcess] = []
    try:
        service_url = service.stdout.readline().rsplit(" ", 1)[1].strip()
        with urllib.request.urlopen(f"{service_url}/new?size=1", timeout=10) as response:
            token = response.read().decode().strip()
        members.append(
            MemberProcess(
                "flotilla",
                tmp_path / "d1",
                free_port(),
                free_port(),
                ["--enable-v2=true"],
                name="d1",
                discovery=token,
            ).start()  # fmt: skip
        )
        extra = Proxy(tmp_path / "d2", "--name", "d2", "--discovery", token,
                      "--initial-advertise-peer-urls", f"http://127.0.0.1:{free_port()}").start()  # fmt: skip
        try:
            assert any("discovery cluster full, falling back to proxy" in line for line in extra.log)
            assert etcdctl(extra.url, "--no-sync", "set", "/through-fallback", "ok", api="2").stdout == "ok\n"
            assert etcdctl(members[0].endpoint, "get", "/through-fallback", api="2").stdout == "ok\n"
        finally:
            extra.stop()
    finally:
        for member in members:
            member.kill()
        service.terminate()
        service.wait(15)

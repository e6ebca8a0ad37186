"""The discovery client's failure handling against small in-process servers: endpoints that are not
etcd, unreachable services, 5xx answers retried, an HTTP proxy, a service that ends watches early."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from discovery_harness import free_port

from flotilla.discovery import (
    BadDiscoveryEndpointError,
    DiscoveryError,
    TooManyRetriesError,
    get_cluster,
    join_cluster,
    registration_value,
)

FAST = {"max_retries": 3, "backoff_s": 0.01, "timeout_s": 10}


class _FakeToken:
    """A v2 keys directory for one token, in memory, with an X-Etcd-Index; enough of etcd's v2 API for
    the discovery client (size, listing, create, recursive wait), plus injected failures."""

    def __init__(self, size: int, fail_first: int = 0, clear_history_once: bool = False) -> None:
        self.size, self.index, self.nodes = size, 10, {}
        self.fail_first, self.requests = fail_first, []
        self.clear_history_once = clear_history_once
        self.changed = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def _json(self, status: int, doc: dict) -> web.Response:
        return web.json_response(doc, status=status, headers={"X-Etcd-Index": str(self.index)})

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path_qs))
        if len(self.requests) <= self.fail_first:
            return web.Response(status=503, text="no leader")
        path = request.path
        if path.endswith("/_config/size"):
            return self._json(200, {"action": "get", "node": {"key": path, "value": str(self.size)}})
        if request.method == "PUT":
            name = path.rsplit("/", 1)[1]
            if name in self.nodes:
                exists = {"errorCode": 105, "message": "Key already exists", "index": self.index}
                return self._json(412, exists)
            self.index += 1
            self.nodes[name] = ((await request.post())["value"], self.index)
            self.changed.set()
            return self._json(201, {"action": "create", "node": {"key": path, "createdIndex": self.index}})
        if "wait" in request.query:
            if self.clear_history_once:
                self.clear_history_once = False
                cleared = {"errorCode": 401, "message": "The event in requested index is outdated and cleared"}  # noqa: E501
                return self._json(401, cleared)
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.2)
            except TimeoutError:
                return web.Response(status=200)  # an idle watch ended: the client watches again
            return self._json(200, {"action": "create", "node": {"key": path}})
        children = [{"key": f"{path}/{n}", "value": v, "createdIndex": i} for n, (v, i) in self.nodes.items()]
        return self._json(200, {"action": "get", "node": {"key": path, "dir": True, "nodes": children}})


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def test_registration_value_is_etcds_urls_map_string():
    assert registration_value("n", ["http://b:2", "http://a:1"]) == "n=http://a:1,n=http://b:2"


def test_a_url_that_is_not_a_v2_keys_api_is_a_bad_discovery_endpoint():
    async def scenario():
        async def html(request: web.Request) -> web.Response:
            return web.Response(text="<html>hello</html>", content_type="text/html")

        app = web.Application()
        app.router.add_get("/{tail:.*}", html)
        runner, base = await _serve(app)
        try:
            await join_cluster(f"{base}/tok", 1, "n", ["http://127.0.0.1:1"], **FAST)
        finally:
            await runner.cleanup()

    with pytest.raises(BadDiscoveryEndpointError) as bad:
        asyncio.run(scenario())
    assert str(bad.value) == "discovery: bad discovery endpoint"


def test_an_unreachable_service_is_retried_then_too_many_retries():
    url = f"http://127.0.0.1:{free_port()}/tok"
    with pytest.raises(TooManyRetriesError) as error:
        asyncio.run(join_cluster(url, 1, "n", ["http://127.0.0.1:1"], **FAST))
    assert str(error.value) == "discovery: too many retries"
    with pytest.raises(DiscoveryError):
        asyncio.run(join_cluster("not a url", 1, "n", ["http://127.0.0.1:1"], **FAST))


def test_5xx_answers_are_retried_and_a_cleared_history_reread():
    async def scenario():
        fake = _FakeToken(size=2, fail_first=2, clear_history_once=True)
        runner, base = await _serve(fake.app())
        try:
            url = f"{base}/tok"
            first = asyncio.create_task(join_cluster(url, 0xA, "a", ["http://127.0.0.1:1"], **FAST))
            await asyncio.sleep(0.3)  # past an idle watch or two
            second = await join_cluster(url, 0xB, "b", ["http://127.0.0.1:2"], **FAST)
            return await first, second, fake
        finally:
            await runner.cleanup()

    first, second, fake = asyncio.run(scenario())
    assert first == second == "a=http://127.0.0.1:1,b=http://127.0.0.1:2"
    assert fake.requests[:3] == [("GET", "/tok/_config/size")] * 3  # two 503s, then an answer


def test_requests_go_through_the_discovery_proxy():
    async def scenario():
        fake = _FakeToken(size=1)
        store_runner, base = await _serve(fake.app())
        seen = []

        async def forward(request: web.Request) -> web.Response:
            # An HTTP forward proxy receives the absolute URL.
            seen.append(str(request.url))
            async with aiohttp.ClientSession() as http:
                async with http.request(request.method, request.url, data=await request.read(),
                                        headers={"Content-Type": request.content_type}) as answer:
                    body = await answer.read()
                    return web.Response(status=answer.status, body=body, headers={
                        k: v for k, v in answer.headers.items() if k.lower().startswith("x-etcd")
                    } | {"Content-Type": "application/json"})  # fmt: skip

        proxy_app = web.Application()
        proxy_app.router.add_route("*", "/{tail:.*}", forward)
        proxy_runner, proxy = await _serve(proxy_app)
        try:
            peers = ["http://127.0.0.1:7"]
            cluster = await join_cluster(f"{base}/tok", 1, "solo", peers, proxy=proxy, **FAST)
            again = await get_cluster(f"{base}/tok", proxy=proxy.removeprefix("http://"), **FAST)
            return cluster, again, seen
        finally:
            await proxy_runner.cleanup()
            await store_runner.cleanup()

    cluster, again, seen = asyncio.run(scenario())
    assert cluster == again == "solo=http://127.0.0.1:7"
    # join: size, list, create, size, list; get_cluster: size, list — all through the proxy.
    assert len(seen) == 7 and all(u.startswith("http://127.0.0.1:") and "/tok" in u for u in seen)

"""`flotilla discovery` as a real process with its own Flotilla store, and the member's discovery client
against it: etcd's v2discovery protocol (register, wait for N, cluster full, duplicate ID, restart)."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse

import pytest
from discovery_harness import DiscoveryService, http

from flotilla.discovery import (
    BadSizeKeyError,
    ClusterFullError,
    DiscoveryError,
    DiscoveryTimeoutError,
    DuplicateIdError,
    DuplicateNameError,
    SizeNotFoundError,
    create_token,
    get_cluster,
    join_cluster,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = DiscoveryService(tmp_path_factory.mktemp("discovery") / "data").start()
    try:
        yield svc
    finally:
        svc.stop()


def _token(service: DiscoveryService, size: int | str) -> str:
    status, _, body = http("GET", f"{service.url}/new?size={size}")
    assert status == 200, body
    return body.decode()


def _peer(i: int) -> list[str]:
    return [f"http://127.0.0.1:{30000 + i}"]


async def _join_all(url: str, members: list[tuple[int, str]], **kwargs) -> list[str | BaseException]:
    return await asyncio.gather(
        *(join_cluster(url, mid, name, _peer(mid), **kwargs) for mid, name in members), return_exceptions=True
    )


def test_new_hands_out_a_token_url_with_the_size(service):
    status, headers, body = http("GET", f"{service.url}/new")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert re.fullmatch(re.escape(service.url) + r"/[0-9a-f]{32}", body.decode())
    status, headers, body = http("GET", f"{body.decode()}/_config/size")
    assert status == 200 and json.loads(body)["node"]["value"] == "3"  # default size
    assert headers["X-Etcd-Index"].isdigit()
    # POST with a form, as curl -d does; and the Python client.
    status, _, body = http("POST", f"{service.url}/new", data=b"size=5")
    assert status == 200
    assert json.loads(http("GET", f"{body.decode()}/_config/size")[2])["node"]["value"] == "5"
    token_url = asyncio.run(create_token(service.url, 7))
    assert json.loads(http("GET", f"{token_url}/_config/size")[2])["node"]["value"] == "7"


@pytest.mark.parametrize("size", ["0", "-1", "abc", "2.5"])
def test_new_refuses_a_size_that_is_not_a_positive_whole_number(service, size):
    status, _, body = http("GET", f"{service.url}/new?size={urllib.parse.quote(size)}")
    assert status == 400
    assert f"invalid size {size!r}" in body.decode()
    with pytest.raises(DiscoveryError, match="400"):
        asyncio.run(create_token(service.url, int(size) if size.lstrip("-").isdigit() else 0))


def test_three_members_get_the_same_initial_cluster_and_a_fourth_finds_it_full(service):
    url = _token(service, 3)
    members = [(0xA1, "infra0"), (0xA2, "infra1"), (0xA3, "infra2")]
    results = asyncio.run(_join_all(url, members, timeout_s=20))
    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1
    cluster = results[0].split(",")
    assert sorted(cluster) == sorted(f"{name}={_peer(mid)[0]}" for mid, name in members)
    # Registration order (createdIndex) is the order of the string.
    nodes = json.loads(http("GET", url)[2])["node"]["nodes"]
    by_index = sorted(nodes, key=lambda n: n["createdIndex"])
    assert [n["value"] for n in by_index] == cluster

    with pytest.raises(ClusterFullError) as full:
        asyncio.run(join_cluster(url, 0xA4, "infra3", _peer(0xA4), timeout_s=10))
    assert str(full.value) == "discovery: cluster is full"
    # The fast path refuses before writing: the fourth member is not registered.
    assert len(json.loads(http("GET", url)[2])["node"]["nodes"]) == 3
    # get_cluster (a proxy's fallback) reads the same cluster.
    assert asyncio.run(get_cluster(url, timeout_s=10)) == results[0]

    # A founding member that restarts before its WAL exists finds itself and proceeds.
    again = asyncio.run(join_cluster(url, 0xA2, "infra1", _peer(0xA2), timeout_s=10))
    assert again == results[0]


def test_a_member_waits_for_the_others(service):
    url = _token(service, 2)

    async def scenario():
        first = asyncio.create_task(join_cluster(url, 0xB1, "b1", _peer(0xB1), timeout_s=20))
        observer = asyncio.create_task(get_cluster(url, timeout_s=20))
        await asyncio.sleep(0.5)
        assert not first.done() and not observer.done()
        second = await join_cluster(url, 0xB2, "b2", _peer(0xB2), timeout_s=20)
        return await first, await observer, second

    first, observer, second = asyncio.run(scenario())
    assert first == second == observer == f"b1={_peer(0xB1)[0]},b2={_peer(0xB2)[0]}"


def test_waiting_is_bounded_by_timeout_s(service):
    url = _token(service, 2)
    with pytest.raises(DiscoveryTimeoutError):
        asyncio.run(join_cluster(url, 0xC1, "c1", _peer(0xC1), timeout_s=0.5))


def test_the_same_id_with_other_peer_urls_is_a_duplicate_id(service):
    url = _token(service, 3)
    asyncio.run(_join_all(url, [(0xD1, "d1")], timeout_s=0.3))  # registers, then times out waiting
    with pytest.raises(DuplicateIdError) as duplicate:
        asyncio.run(join_cluster(url, 0xD1, "other", ["http://127.0.0.1:1"], timeout_s=10))
    assert str(duplicate.value) == "discovery: found duplicate id"


def test_two_members_with_one_name_are_a_duplicate_name(service):
    url = _token(service, 2)
    results = asyncio.run(_join_all(url, [(0xE1, "same"), (0xE2, "same")], timeout_s=20))
    assert all(isinstance(r, DuplicateNameError) for r in results), results
    assert str(results[0]) == "discovery: found duplicate name"


def test_an_unknown_token_has_no_size(service):
    with pytest.raises(SizeNotFoundError) as missing:
        asyncio.run(join_cluster(f"{service.url}/{'0' * 32}", 1, "x", _peer(1), timeout_s=10))
    assert str(missing.value) == "discovery: size key not found"


def test_a_size_that_is_not_a_number_is_a_bad_size_key(service):
    token = "badsize" + "0" * 25
    store = service.store_endpoint()
    status, _, _ = http("PUT", f"{store}/v2/keys/_etcd/registry/{token}/_config/size", data=b"value=three")
    assert status == 201
    with pytest.raises(BadSizeKeyError, match="size key is bad"):
        asyncio.run(join_cluster(f"{service.url}/{token}", 1, "x", _peer(1), timeout_s=10))


def test_the_proxy_keeps_the_stores_answers_and_guards_the_registry(service):
    url = _token(service, 3)
    status, headers, body = http("PUT", f"{url}/abc?prevExist=false", data=b"value=a%3Dhttp://h:1")
    assert status == 201 and json.loads(body)["action"] == "create"
    assert {"X-Etcd-Index", "X-Raft-Index", "X-Etcd-Cluster-Id"} <= set(headers)
    status, _, body = http("PUT", f"{url}/abc?prevExist=false", data=b"value=again")
    assert status == 412 and json.loads(body)["errorCode"] == 105
    # A watch from an index already passed answers at once with that event.
    index = json.loads(http("GET", f"{url}/abc")[2])["node"]["createdIndex"]
    status, _, body = http("GET", f"{url}?wait=true&recursive=true&waitIndex={index}")
    assert status == 200 and json.loads(body)["node"]["key"].endswith("/abc")
    assert http("PUT", f"{url}/_config/size", data=b"value=9")[0] == 405
    assert http("DELETE", url)[0] == 405
    assert http("GET", f"{url}/%2e%2e/%2e%2e/x")[0] == 400
    assert http("DELETE", f"{url}/abc")[0] == 200
    status, _, body = http("GET", f"{service.url}/health")
    assert (status, body) == (200, b"OK")


def test_public_url_is_the_base_of_token_urls(service):
    from aiohttp import web

    from flotilla.discovery import ServiceSettings, create_app

    async def scenario():
        app = create_app(ServiceSettings(service.store_endpoint(), public_url="https://discovery.example/"))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            return await create_token(f"http://127.0.0.1:{runner.addresses[0][1]}", 2)
        finally:
            await runner.cleanup()

    assert re.fullmatch(r"https://discovery\.example/[0-9a-f]{32}", asyncio.run(scenario()))


def test_the_command_refuses_a_bad_listen_address_as_a_usage_error():
    from click.testing import CliRunner

    from flotilla.cli.main import flotilla

    result = CliRunner().invoke(flotilla, ["discovery", "--listen-addr", "nowhere"])
    assert result.exit_code == 2
    assert "invalid listen address 'nowhere'" in result.output

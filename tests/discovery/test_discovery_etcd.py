"""Protocol compatibility with real etcd 3.4.23: Debian's etcd as the service's backing store, and Debian's
etcd members bootstrapping with ``--discovery`` from our service (Flotilla- or etcd-backed)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest
from discovery_harness import REAL_ETCDCTL, DiscoveryService, RealEtcd, http, real_etcd_available

from flotilla.discovery import ClusterFullError, join_cluster

pytestmark = pytest.mark.skipif(not real_etcd_available(), reason="Debian's etcd is not installed")


@pytest.fixture(scope="module")
def etcd_store(tmp_path_factory):
    store = RealEtcd(tmp_path_factory.mktemp("etcd-store") / "data", "store", "--enable-v2=true")
    try:
        yield store.launch().wait_healthy()
    finally:
        store.stop()


@pytest.fixture(scope="module")
def etcd_backed(tmp_path_factory, etcd_store):
    data_dir = tmp_path_factory.mktemp("svc-etcd") / "data"
    svc = DiscoveryService(data_dir, "--store-endpoint", etcd_store.endpoint)
    try:
        yield svc.start()
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def flotilla_backed(tmp_path_factory):
    svc = DiscoveryService(tmp_path_factory.mktemp("svc-flotilla") / "data")
    try:
        yield svc.start()
    finally:
        svc.stop()


def _token(service: DiscoveryService, size: int) -> str:
    status, _, body = http("GET", f"{service.url}/new?size={size}")
    assert status == 200, body
    return body.decode()


def test_the_service_over_etcd_registers_three_and_refuses_a_fourth(etcd_backed, etcd_store):
    for size in ("0", "-1", "abc"):
        assert http("GET", f"{etcd_backed.url}/new?size={size}")[0] == 400
    url = _token(etcd_backed, 3)
    token = url.rsplit("/", 1)[1]
    # The token lives where discovery.etcd.io keeps it.
    status, _, body = http("GET", f"{etcd_store.endpoint}/v2/keys/_etcd/registry/{token}/_config/size")
    assert status == 200 and json.loads(body)["node"]["value"] == "3"

    async def join_three():
        return await asyncio.gather(
            *(join_cluster(url, 0xF0 + i, f"n{i}", [f"http://127.0.0.1:{31000 + i}"], timeout_s=20)
              for i in range(3))
        )  # fmt: skip

    results = asyncio.run(join_three())
    assert len(set(results)) == 1
    assert sorted(results[0].split(",")) == [f"n{i}=http://127.0.0.1:{31000 + i}" for i in range(3)]
    with pytest.raises(ClusterFullError):
        asyncio.run(join_cluster(url, 0xF9, "n9", ["http://127.0.0.1:31009"], timeout_s=10))
    restarted = asyncio.run(join_cluster(url, 0xF1, "n1", ["http://127.0.0.1:31001"], timeout_s=10))
    assert restarted == results[0]


def _member_list(endpoint: str) -> list[dict]:
    env = {"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [REAL_ETCDCTL, f"--endpoints={endpoint}", "member", "list", "-w", "json"],
        capture_output=True, text=True, env=env, timeout=20, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)["members"]


@pytest.mark.parametrize("backing", ["flotilla_backed", "etcd_backed"])
def test_real_etcd_members_bootstrap_from_our_service(backing, request, tmp_path):
    service = request.getfixturevalue(backing)
    url = _token(service, 3)
    members = [RealEtcd(tmp_path / f"e{i}", f"e{i}", "--discovery", url) for i in range(3)]
    extra = RealEtcd(tmp_path / "e3", "e3", "--discovery", url, "--discovery-fallback", "exit")
    try:
        for member in members:
            member.launch()
        for member in members:
            member.wait_healthy(60)
        listed = _member_list(members[0].endpoint)
        assert sorted(m["name"] for m in listed) == ["e0", "e1", "e2"]
        assert sorted(m["peerURLs"][0] for m in listed) == sorted(m.peer_url for m in members)
        # The registrations are etcd's: the member IDs in hex, name=peerURL.
        nodes = json.loads(http("GET", url)[2])["node"]["nodes"]
        ids = {format(m["ID"], "x") for m in listed}
        assert {n["key"].rsplit("/", 1)[1] for n in nodes} == ids
        expected = sorted(f"e{i}={m.peer_url}" for i, m in enumerate(members))
        assert sorted(n["value"] for n in nodes) == expected

        # A fourth etcd finds the cluster full and, with --discovery-fallback exit, exits saying so.
        extra.launch()
        extra.proc.wait(30)
        assert extra.proc.returncode != 0
        assert "cluster is full" in extra.log()
    finally:
        for member in [*members, extra]:
            member.stop()
    deadline = time.monotonic() + 5
    while any(m.proc and m.proc.poll() is None for m in members) and time.monotonic() < deadline:
        time.sleep(0.1)

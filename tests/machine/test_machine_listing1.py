"""Issue 8's acceptance: the seeds' Listing 1 (etcd 0.4 style — a discovery URL, addr/peer-addr on
$private_ipv4:4001/7001, etcd.service and fleet.service started) boots a 3-machine cluster, the discovery
URL pointed at a local `flotilla discovery` token. Each machine runs in a network namespace of its own made
by the test (veth pairs to a bridge in a "switch" namespace), so every member binds 4001/7001 on its own
address without touching the host's ports or network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_harness import (  # noqa: E402
    ETCDCTL,
    Network,
    etcdctl,
    fleet_machines,
    in_netns,
    netns_supported,
    running_machine,
    wait_for,
)

from flotilla.machine import MachineSpec, machine_pids  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(ETCDCTL), reason="Debian's etcdctl not installed"),
    pytest.mark.skipif(not netns_supported(), reason="needs root and `ip netns`"),
]

# The seeds' Listing 1 (examples/cloud-config/listing1.yml); only its token URL is replaced.
LISTING_1 = (Path(__file__).resolve().parents[2] / "examples/cloud-config/listing1.yml").read_text()


def _discovery(network: Network, data_dir: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "flotilla", "discovery", "--listen-addr", f"{network.switch_address}:0"]
    argv += ["--data-dir", str(data_dir)]
    return subprocess.Popen(
        in_netns(network.switch, argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def _new_token(network: Network, service_url: str, size: int) -> str:
    code = (
        "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
    )
    argv = [sys.executable, "-c", code, f"{service_url}/new?size={size}"]
    result = subprocess.run(in_netns(network.switch, argv), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_listing_1_boots_a_three_machine_cluster_through_discovery(tmp_path: Path) -> None:
    network = Network(3)
    discovery = None
    try:
        discovery = _discovery(network, tmp_path / "discovery")
        assert discovery.stdout is not None
        line = discovery.stdout.readline()
        assert line.startswith("discovery service listening on "), line
        token = _new_token(network, line.rsplit(" ", 1)[1].strip(), 3)
        (tmp_path / "user-data").write_text(LISTING_1.replace("https://discovery.etcd.io/<token>", token))
        specs = [
            MachineSpec(tmp_path / f"core{i + 1}", tmp_path / "user-data", ip=network.address(i), netns=host)
            for i, host in enumerate(network.hosts)
        ]
        _boot_and_check(network, specs)
        for spec in specs:
            assert not machine_pids(spec.root)
    finally:
        if discovery is not None:
            discovery.terminate()
            discovery.wait(30)
        network.close()


def _boot_and_check(network: Network, specs: list[MachineSpec]) -> None:
    with running_machine(specs[0]) as first, running_machine(specs[1]), running_machine(specs[2]):
        endpoints = [f"http://{spec.ip}:4001" for spec in specs]

        def members() -> list[str]:
            listed = etcdctl(endpoints[0], "member", "list", netns=network.switch)
            return listed.stdout.splitlines() if listed.returncode == 0 else []

        rows = wait_for(
            lambda: len(members()) == 3 and members(), "the three members to form one cluster", 90
        )
        assert all(", started, " in row for row in rows), rows
        assert sorted(row.split(", ")[4] for row in rows) == endpoints  # client URLs from addr
        put = etcdctl(endpoints[1], "put", "listing-1", "booted", netns=network.switch)
        assert put.returncode == 0, put.stderr
        got = etcdctl(endpoints[2], "get", "listing-1", "--print-value-only", netns=network.switch)
        assert got.stdout == "booted\n"
        # fleet on each machine talks to its own member; every machine sees all three.
        socket = first.state.fleet_socket  # type: ignore[union-attr]
        machines = wait_for(lambda: len(fleet_machines(socket)) == 3 and fleet_machines(socket), "fleet", 60)
        assert sorted(row[1] for row in machines) == sorted(spec.ip for spec in specs)

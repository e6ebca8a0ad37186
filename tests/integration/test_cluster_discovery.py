"""Flotilla members bootstrap from `flotilla discovery` as CoreOS machines did from discovery.etcd.io: three
members started with the same token form one cluster; a fourth gets etcd's documented outcome (with
--discovery-fallback=exit it stops saying the cluster is full; the default, proxy, runs as a proxy)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest
from processes import MemberProcess, etcdctl, free_port, real_etcd_available

pytestmark = pytest.mark.skipif(not real_etcd_available(), reason="Debian's etcdctl not installed")


@pytest.fixture
def discovery(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "flotilla.cli.main", "discovery", "--listen-addr", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "discovery")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("discovery service listening on "), line
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(15)


def _token(service_url: str, size: int) -> str:
    with urllib.request.urlopen(f"{service_url}/new?size={size}", timeout=10) as response:
        return response.read().decode().strip()


def _member(tmp_path, name: str, token: str, *extra: str) -> MemberProcess:
    return MemberProcess(
        "flotilla", tmp_path / name, free_port(), free_port(), list(extra), name=name, discovery=token
    )


def test_three_members_bootstrap_from_one_token_and_a_fourth_is_refused(tmp_path, discovery):
    token = _token(discovery, 3)
    members = [_member(tmp_path, f"d{i}", token) for i in range(1, 4)]
    try:
        for member in members:
            member.launch()
        for member in members:
            member.wait_ready(60)
        listed = etcdctl(members[0].address, "member", "list")
        assert listed.returncode == 0, listed.stderr
        assert sorted(line.split(", ")[2] for line in listed.stdout.splitlines()) == ["d1", "d2", "d3"]
        put = etcdctl(members[1].address, "put", "via-discovery", "ok")
        assert put.returncode == 0, put.stderr
        got = etcdctl(members[2].address, "get", "via-discovery", "--print-value-only")
        assert got.stdout == "ok\n"
        # The fourth member with the same token: etcd's "cluster is full"; with fallback exit, it stops.
        fourth = _member(tmp_path, "d4", token, "--discovery-fallback", "exit")
        result = subprocess.run(fourth.command(), capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert "discovery: cluster is full" in result.stderr
        assert not (tmp_path / "d4" / "member").exists()  # nothing half-written
        # A restart of a founding member does not ask discovery again: its data directory knows the cluster.
        members[0].stop()
        started = time.monotonic()
        members[0].start()
        assert time.monotonic() - started < 30
    finally:
        for member in members:
            member.kill()

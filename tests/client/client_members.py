"""Store members for the client's tests: a Flotilla member and Debian's etcd 3.4 (when installed), started
with the integration tests' process helpers on free loopback ports and always stopped afterwards."""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from processes import MemberProcess, etcdctl, real_etcd_available, start_cluster, start_member  # noqa: E402

KINDS = ["flotilla", "etcd"] if real_etcd_available() else ["flotilla"]
SAFETY_TIMEOUT_S = 45  # a hung test fails instead of hanging the suite; not a performance bound

__all__ = [
    "KINDS",
    "MemberProcess",
    "cluster_of",
    "etcdctl",
    "real_etcd_available",
    "run",
    "shared_member",
    "single_member",
    "start_member",
    "watcher_total",
]


def run(coro):
    """Run one test's coroutine on a fresh event loop."""
    return asyncio.run(asyncio.wait_for(coro, SAFETY_TIMEOUT_S))


@pytest.fixture(scope="module", params=KINDS)
def shared_member(request, tmp_path_factory):
    """One member per kind for a whole test module (tests use distinct key prefixes)."""
    member = start_member(request.param, tmp_path_factory.mktemp(f"client-{request.param}"))
    yield member
    member.kill()


@pytest.fixture(params=KINDS)
def single_member(request, tmp_path):
    """A member of its own, for a test that kills it."""
    member = start_member(request.param, tmp_path)
    yield member
    member.kill()


def cluster_of(kind: str, tmp_path: Path, size: int = 3) -> list[MemberProcess]:
    return start_cluster(kind, tmp_path, size)


def watcher_total(member: MemberProcess) -> int:
    """The member's count of server-side watchers (etcd's etcd_debugging_mvcc_watcher_total gauge)."""
    with urllib.request.urlopen(member.endpoint + "/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return int(float(line.split()[1]))
    raise AssertionError(f"no etcd_debugging_mvcc_watcher_total in {member.endpoint}/metrics")

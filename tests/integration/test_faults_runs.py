"""The fault runner against real clusters: short randomized runs of every fault kind (kill -9 of the
leader or a follower, SIGSTOP/SIGCONT, leader moves, a follower wiped and re-added, partitions between
network namespaces) must end linearizable with equal hashes; and the checker must catch a stale read
served by a partitioned member."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc
from flotilla.faults import ProcessCluster, RunSettings, Workload, run_once
from flotilla.faults.partition import Partitions
from flotilla.linearizability import check


def _netns_available() -> bool:
    probe = subprocess.run(["ip", "netns", "add", "flt-probe-test"], capture_output=True)
    if probe.returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", "flt-probe-test"], capture_output=True)
    return True


needs_netns = pytest.mark.skipif(not _netns_available(), reason="ip netns needs root")
PROCESS_FAULTS = ("kill-leader", "kill-follower", "pause-leader", "pause-follower", "move-leader",
                  "replace-follower")  # fmt: skip


def _assert_ok(result) -> None:
    assert result.ok, result.summary() + "\n" + result.detail
    assert result.faults, "no fault was applied"


@pytest.mark.parametrize("seed", [11, 12])
def test_three_members_under_process_faults(tmp_path, seed):
    _assert_ok(run_once(RunSettings(seconds=8, seed=seed, faults=PROCESS_FAULTS, base_dir=tmp_path)))


@needs_netns
def test_three_members_under_partitions(tmp_path):
    faults = ("partition-leader", "partition-minority", "kill-follower")
    _assert_ok(run_once(RunSettings(seconds=10, seed=21, netns=True, faults=faults, base_dir=tmp_path)))


def test_five_members(tmp_path):
    _assert_ok(run_once(RunSettings(members=5, seconds=8, seed=31, faults=PROCESS_FAULTS, base_dir=tmp_path)))


def test_the_runner_drives_debians_etcd_the_same_way(tmp_path):
    settings = RunSettings(seconds=6, seed=41, impl="etcd", faults=PROCESS_FAULTS, base_dir=tmp_path)
    _assert_ok(run_once(settings))


@needs_netns
def test_the_checker_catches_a_stale_read_from_a_partitioned_member(tmp_path):
    """A serializable read answered by a member cut off from the others returns the value from before the
    majority's write: the history of that write and that read is not linearizable."""
    with ProcessCluster(tmp_path, 3, netns=True) as cluster:
        cluster.start()
        leader = cluster.leader()
        lonely = next(m for m in cluster.members if m is not leader)
        workload = Workload(lambda: [], clients=1, keys=1, serializable_reads=True)

        async def scenario() -> None:
            await workload.one(workload._stub(leader.address), 1, "put", "key-0", "before")
            await _wait_applied(workload, lonely, "before")
            Partitions(cluster).isolate(lonely)
            await workload.one(workload._stub(leader.address), 1, "put", "key-0", "after")
            await workload.one(workload._stub(lonely.address), 2, "get", "key-0", "")
            await workload.close()

        asyncio.run(scenario())
    kinds = [(op.kind, op.value, op.known) for op in workload.history]
    assert kinds[-1] == ("get", "before", True), kinds  # the stale answer really came back
    result = check(workload.history)
    assert result.ok is False
    assert "get key-0 -> 'before'" in result.explain()


async def _wait_applied(workload: Workload, member, value: str) -> None:
    stub: rpc_pb2_grpc.KVStub = workload._stub(member.address)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        resp = await stub.Range(rpc_pb2.RangeRequest(key=b"key-0", serializable=True), timeout=2)
        if resp.kvs and resp.kvs[0].value.decode() == value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{member.name} never applied {value!r}")

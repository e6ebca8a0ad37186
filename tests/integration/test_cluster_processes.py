"""A 3-member cluster of real ``flotilla etcd`` processes, driven by Debian's etcdctl and PyPI etcd3 as a
user would: member list, endpoint status/health --cluster, move-leader, writes on one member read on
another, a member added (joining with --initial-cluster-state existing) and removed, kill -9 of the
leader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from processes import MemberProcess, etcdctl, free_port, real_etcd_available, start_cluster

pytestmark = pytest.mark.skipif(not real_etcd_available(), reason="Debian's etcd/etcdctl not installed")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    members = start_cluster("flotilla", tmp_path_factory.mktemp("cluster"), 3, "--enable-v2=true")
    yield members
    for member in members:
        member.kill()


def _endpoints(members) -> str:
    return ",".join(m.address for m in members if m.proc is not None and m.proc.poll() is None)


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _status(members) -> list[dict]:
    out = _ok(etcdctl(_endpoints(members), "endpoint", "status", "-w", "json"))
    return json.loads(out)


def _leader_id(members) -> int:
    leaders = {s["Status"]["leader"] for s in _status(members)}
    assert len(leaders) == 1, leaders
    return leaders.pop()


def test_member_list_shows_every_started_member(cluster):
    out = _ok(etcdctl(cluster[0].address, "member", "list", "-w", "json"))
    members = json.loads(out)["members"]
    assert sorted(m["name"] for m in members) == ["m1", "m2", "m3"]
    by_name = {m["name"]: m for m in members}
    for process in cluster:
        assert by_name[process.name]["clientURLs"] == [process.endpoint]
        assert by_name[process.name]["peerURLs"] == [process.peer_url]
    simple = _ok(etcdctl(cluster[1].address, "member", "list")).splitlines()
    assert len(simple) == 3 and all(", started, " in line for line in simple)


def test_endpoint_status_and_health_across_the_cluster(cluster):
    rows = _ok(etcdctl(cluster[0].address, "endpoint", "status", "--cluster", "-w", "table"))
    for process in cluster:
        assert process.endpoint in rows
    statuses = json.loads(_ok(etcdctl(cluster[0].address, "endpoint", "status", "--cluster", "-w", "json")))
    leaders = [s for s in statuses if s["Status"]["leader"] == s["Status"]["header"]["member_id"]]
    assert len(statuses) == 3 and len(leaders) == 1
    result = etcdctl(cluster[0].address, "endpoint", "health", "--cluster")
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).count("is healthy") == 3  # etcdctl 3.4 prints it on stderr
    statuses = _status(cluster)
    assert len({s["Status"]["header"]["cluster_id"] for s in statuses}) == 1
    assert len({s["Status"]["raftTerm"] for s in statuses}) == 1


def test_a_write_on_one_member_is_read_on_every_other(cluster):
    _ok(etcdctl(cluster[0].address, "put", "greeting", "hello"))
    for process in cluster:
        assert _ok(etcdctl(process.address, "get", "greeting", "--print-value-only")) == "hello\n"
    # v2, with a quorum read on another member
    _ok(etcdctl(cluster[1].endpoint, "set", "/v2greeting", "hi", api="2"))
    for process in cluster:
        assert _ok(etcdctl(process.endpoint, "get", "--quorum", "/v2greeting", api="2")) == "hi\n"


def test_move_leader_hands_leadership_to_the_named_member(cluster):
    leader = _leader_id(cluster)
    ids = [s["Status"]["header"]["member_id"] for s in _status(cluster)]
    target = next(i for i in ids if i != leader)
    out = _ok(etcdctl(_endpoints(cluster), "move-leader", format(target, "x")))
    assert f"Leadership transferred from {leader:x} to {target:x}" in out
    assert _leader_id(cluster) == target


def test_python_etcd3_cluster_calls(cluster):
    leader = _leader_id(cluster)
    ids = {s["Endpoint"]: s["Status"]["header"]["member_id"] for s in _status(cluster)}
    follower = next(p for p in cluster if ids[p.address] != leader)
    script = textwrap.dedent(
        f"""
        import etcd3
        client = etcd3.client(host="127.0.0.1", port={follower.client_port})
        names = sorted(m.name for m in client.members)
        status = client.status()
        client.put("from-etcd3", "yes")
        value, _ = client.get("from-etcd3")
        lease = client.lease(30)
        lease.refresh()  # a keep-alive: forwarded to the leader when this member follows
        print(names, status.leader.name in names, value.decode(), lease.remaining_ttl > 0)
        """
    )
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['m1', 'm2', 'm3'] True yes True"


def _add_member(cluster, tmp_path, name: str, *flags: str, learner: bool = False) -> MemberProcess:
    """``etcdctl member add`` then start the new member with the ETCD_INITIAL_CLUSTER it printed."""
    peer_port, client_port = free_port(), free_port()
    peer = f"http://127.0.0.1:{peer_port}"
    as_learner = ["--learner"] if learner else []
    out = _ok(etcdctl(_endpoints(cluster), "member", "add", name, *as_learner, f"--peer-urls={peer}"))
    assert "added to cluster" in out
    initial = next(line for line in out.splitlines() if line.startswith("ETCD_INITIAL_CLUSTER="))
    member = MemberProcess(
        "flotilla",
        tmp_path / name,
        client_port,
        peer_port,
        ["--initial-cluster-state", "existing", *flags],
        name=name,
        initial_cluster=initial.split("=", 1)[1].strip('"'),
    )
    try:
        member.start()
    except BaseException:
        member.kill()
        raise
    return member


def _member_hex(cluster, name: str) -> str:
    listed = json.loads(_ok(etcdctl(cluster[0].address, "member", "list", "-w", "json")))["members"]
    return next(format(m["ID"], "x") for m in listed if m["name"] == name)


def _reconfigure(endpoints: str, *args: str, refusal: str = "not enough started members") -> str:
    """Run a membership command, again while etcd's safety check refuses it (a voter is removed only once
    the others have been connected for 5 s; a learner is promoted only once it has caught up)."""
    deadline = time.monotonic() + 15
    while True:
        result = etcdctl(endpoints, "member", *args)
        if result.returncode == 0 or refusal not in result.stderr or time.monotonic() > deadline:
            return _ok(result)
        time.sleep(0.5)


def test_a_member_added_joins_and_a_member_removed_leaves(cluster, tmp_path):
    joiner = _add_member(cluster, tmp_path, "m4", "--enable-v2=true")
    try:
        assert _ok(etcdctl(joiner.address, "get", "greeting", "--print-value-only")) == "hello\n"
        assert _ok(etcdctl(joiner.endpoint, "get", "/v2greeting", api="2")) == "hi\n"
        member_hex = _member_hex(cluster, "m4")
        out = _reconfigure(cluster[0].address, "remove", member_hex)
        assert f"Member {int(member_hex, 16):16x} removed from cluster" in out
        joiner.proc.wait(30)  # a removed member stops
        listed = json.loads(_ok(etcdctl(cluster[0].address, "member", "list", "-w", "json")))["members"]
        assert "m4" not in {m["name"] for m in listed}
    finally:
        joiner.kill()


def test_a_learner_catches_up_and_is_promoted(cluster, tmp_path):
    learner = _add_member(cluster, tmp_path, "l1", learner=True)
    try:
        listed = json.loads(_ok(etcdctl(cluster[0].address, "member", "list", "-w", "json")))["members"]
        assert next(m for m in listed if m["name"] == "l1").get("isLearner") is True
        member_hex = _member_hex(cluster, "l1")
        status = json.loads(_ok(etcdctl(learner.address, "endpoint", "status", "-w", "json")))[0]["Status"]
        assert status["isLearner"] is True
        out = _reconfigure(_endpoints(cluster), "promote", member_hex, refusal="in sync with leader")
        assert f"Member {int(member_hex, 16):16x} promoted in cluster" in out
        listed = json.loads(_ok(etcdctl(cluster[0].address, "member", "list", "-w", "json")))["members"]
        assert not next(m for m in listed if m["name"] == "l1").get("isLearner")
        _ok(etcdctl(_endpoints(cluster), "put", "after-promotion", "yes"))
        assert _ok(etcdctl(learner.address, "get", "after-promotion", "--print-value-only")) == "yes\n"
        _reconfigure(cluster[0].address, "remove", member_hex)
    finally:
        learner.kill()


def test_removing_the_leader_keeps_committed_writes_and_stops_it(cluster, tmp_path):
    # A fourth member first, so three voters remain after the leader goes.
    cluster.append(_add_member(cluster, tmp_path, "m5"))  # the module fixture kills it at the end
    for i in range(20):
        _ok(etcdctl(_endpoints(cluster), "put", f"before-removal-{i}", str(i)))
    leader = _leader_id(cluster)
    ids = {s["Endpoint"]: s["Status"]["header"]["member_id"] for s in _status(cluster)}
    old_leader = next(p for p in cluster if ids[p.address] == leader)
    _reconfigure(_endpoints(cluster), "remove", format(leader, "x"))
    assert old_leader.proc.wait(30) is not None  # the removed member stops
    cluster.remove(old_leader)
    assert _leader_id(cluster) != leader
    _ok(etcdctl(_endpoints(cluster), "put", "after-removal", "yes"))
    for process in cluster:
        assert _ok(etcdctl(process.address, "get", "before-removal-19", "--print-value-only")) == "19\n"
        assert _ok(etcdctl(process.address, "get", "after-removal", "--print-value-only")) == "yes\n"


def test_after_kill_9_of_the_leader_a_new_leader_serves_writes(cluster):
    leader = _leader_id(cluster)
    statuses = {s["Endpoint"]: s["Status"]["header"]["member_id"] for s in _status(cluster)}
    victim = next(p for p in cluster if statuses[p.address] == leader)
    _ok(etcdctl(_endpoints(cluster), "put", "before-kill", "1"))
    victim.kill()
    started = time.monotonic()
    survivors = [p for p in cluster if p is not victim]
    deadline = started + 30
    while True:
        result = etcdctl(_endpoints(survivors), "put", "after-kill", "2", "--command-timeout=1s")
        if result.returncode == 0:
            break
        assert time.monotonic() < deadline, result.stderr
    assert _ok(etcdctl(survivors[0].address, "get", "before-kill", "--print-value-only")) == "1\n"
    assert _leader_id(survivors) != leader
    # The killed member comes back with its data and catches up.
    victim.start()
    assert _ok(etcdctl(victim.address, "get", "after-kill", "--print-value-only")) == "2\n"

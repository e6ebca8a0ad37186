"""--quota-backend-bytes, side by side on `flotilla etcd` and real etcd 3.4.23: writing past the quota raises
the NOSPACE alarm; then puts, writing txns and lease grants are refused with etcd's error while reads and
deletes go on; compact + defrag + `etcdctl alarm disarm` makes the member writable again.

Byte counts differ between LMDB and bbolt, so the behaviour is compared, not how many writes fit.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import grpc
import pytest
from processes import etcdctl, real_etcd_available, start_member

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc

pytestmark = pytest.mark.skipif(not real_etcd_available(), reason="needs Debian's etcd-server and -client")

R = rpc_pb2
QUOTA_BYTES = 256 * 1024  # small enough that both fill it in a few dozen 8 KiB puts
VALUE = b"x" * 8192
NOSPACE = ("RESOURCE_EXHAUSTED", "etcdserver: mvcc: database space exceeded")


@pytest.fixture(scope="module", params=["flotilla", "etcd"])
def filled(request, tmp_path_factory):
    """A member written until NOSPACE; yields (member, stub channel, the answers seen on the way)."""
    member = start_member(
        request.param, tmp_path_factory.mktemp("quota"), "--quota-backend-bytes", str(QUOTA_BYTES)
    )
    channel = grpc.insecure_channel(member.address)
    try:
        yield member, channel, _fill(channel)
    finally:
        channel.close()
        member.stop()


def _call(channel, service: str, method: str, request) -> tuple[str, object]:
    stub = getattr(rpc_pb2_grpc, service + "Stub")(channel)
    try:
        return "OK", getattr(stub, method)(request, timeout=10)
    except grpc.RpcError as error:
        return error.code().name, error.details()


def _fill(channel) -> dict:
    for i in range(400):
        code, answer = _call(channel, "KV", "Put", R.PutRequest(key=b"fill/%d" % (i % 40), value=VALUE))
        if code != "OK":
            return {"puts_before_nospace": i, "error": (code, answer)}
    raise AssertionError("400 puts of 8 KiB never reached a 256 KiB quota")


def _mask(text: str) -> str:
    text = re.sub(r"memberID:\d+", "memberID:ID", text)
    text = re.sub(r"member\[[^\]]*\]", "member[ENDPOINT]", text)
    return re.sub(r"compacted revision \d+", "compacted revision N", text)


def _outcome(channel, service, method, request) -> tuple[str, str]:
    code, answer = _call(channel, service, method, request)
    return (code, "") if code == "OK" else (code, answer)


@pytest.fixture(scope="module")
def behaviours():
    """Each member's observable behaviour through the whole NOSPACE cycle, filled in by the test."""
    return {}


def _cycle(member, channel, seen) -> list:
    steps: list = [("fill", seen["error"]), ("puts before", seen["puts_before_nospace"] > 0)]
    done = etcdctl(member.address, "alarm", "list")
    steps.append(("alarm list", done.returncode, _mask(done.stdout)))
    status = json.loads(etcdctl(member.address, "endpoint", "status", "-w", "json").stdout)
    steps.append(("status errors", [_mask(e) for e in status[0]["Status"].get("errors", [])]))
    steps.append(("put", _outcome(channel, "KV", "Put", R.PutRequest(key=b"new", value=b"v"))))
    write_txn = R.TxnRequest(success=[R.RequestOp(request_put=R.PutRequest(key=b"new", value=b"v"))])
    steps.append(("write txn", _outcome(channel, "KV", "Txn", write_txn)))
    read_txn = R.TxnRequest(success=[R.RequestOp(request_range=R.RangeRequest(key=b"fill/1"))])
    steps.append(("read txn", _outcome(channel, "KV", "Txn", read_txn)))
    steps.append(("lease grant", _outcome(channel, "Lease", "LeaseGrant", R.LeaseGrantRequest(TTL=60))))
    code, got = _call(channel, "KV", "Range", R.RangeRequest(key=b"fill/1"))
    steps.append(("get", code, code == "OK" and got.kvs[0].value == VALUE))
    steps.append(("delete", _outcome(channel, "KV", "DeleteRange", R.DeleteRangeRequest(key=b"fill/1"))))
    steps.append(("gateway put", _gateway_put(member)))
    health = etcdctl(member.address, "endpoint", "health")
    steps.append(("health", health.returncode))
    everything = R.DeleteRangeRequest(key=b"\0", range_end=b"\0")
    steps.append(("delete all", _outcome(channel, "KV", "DeleteRange", everything)))
    revision = _call(channel, "KV", "Range", R.RangeRequest(key=b"x"))[1].header.revision
    for args in (["compact", str(revision)], ["defrag"]):
        done = etcdctl(member.address, *args)
        steps.append((args[0], done.returncode, _mask(done.stdout)))
    steps.append(("put before disarm", _outcome(channel, "KV", "Put", R.PutRequest(key=b"new", value=b"v"))))
    done = etcdctl(member.address, "alarm", "disarm")
    steps.append(("disarm", done.returncode, _mask(done.stdout)))
    done = etcdctl(member.address, "alarm", "list")
    steps.append(("alarm list after", done.returncode, done.stdout))
    steps.append(("put after disarm", _outcome(channel, "KV", "Put", R.PutRequest(key=b"new", value=b"v"))))
    steps.append(("health after", etcdctl(member.address, "endpoint", "health").returncode))
    return steps


def _gateway_put(member) -> tuple[int, object]:
    body = json.dumps({"key": "bmV3", "value": "dg=="}).encode()
    request = urllib.request.Request(member.endpoint + "/v3/kv/put", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_nospace_cycle(filled, behaviours):
    member, channel, seen = filled
    behaviours[member.kind] = _cycle(member, channel, seen)
    steps = dict((step[0], step[1:]) for step in behaviours[member.kind])
    assert steps["fill"] == (NOSPACE,)
    for refused in ("put", "write txn", "lease grant", "put before disarm"):
        assert steps[refused] == (NOSPACE,), refused
    assert steps["read txn"] == (("OK", ""),) and steps["get"] == ("OK", True)
    assert steps["delete"] == (("OK", ""),)
    assert steps["put after disarm"] == (("OK", ""),)
    if len(behaviours) == 2:
        assert behaviours["flotilla"] == behaviours["etcd"]

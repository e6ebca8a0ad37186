"""Bad input, side by side: the same malformed, oversized or invalid request to `flotilla etcd` and to a real
etcd 3.4.23, over gRPC (status code + details) and over the JSON gateway (HTTP status, content type,
body). Both must answer alike, and both must go on serving a normal put/get afterwards.

Response headers (cluster/member IDs) are dropped before comparing; everything else must be equal.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request

import grpc
import pytest
from processes import real_etcd_available, start_member

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc

pytestmark = pytest.mark.skipif(not real_etcd_available(), reason="needs Debian's etcd-server")

R = rpc_pb2
MAX_REQUEST_BYTES = 1_572_864
GRPC_LIMIT = MAX_REQUEST_BYTES + 512 * 1024


class Member:
    """A started member with one gRPC channel."""

    def __init__(self, process) -> None:
        self.process = process
        self.channel = grpc.insecure_channel(process.address)
        self.serving_checks = 0

    def call(self, service: str, method: str, request) -> tuple[str, str]:
        stub = getattr(rpc_pb2_grpc, service + "Stub")(self.channel)
        try:
            response = getattr(stub, method)(request, timeout=10)
        except grpc.RpcError as error:
            return error.code().name, error.details()
        if response.HasField("header"):
            response.ClearField("header")
        return "OK", str(response)

    def raw(self, path: str, payload: bytes) -> tuple[str, str]:
        call = self.channel.unary_unary(path, request_serializer=bytes, response_deserializer=bytes)
        try:
            call(payload, timeout=10)
        except grpc.RpcError as error:
            return error.code().name, error.details()
        return "OK", ""

    def http(self, path: str, body: bytes | None, method: str = "POST") -> tuple[int, str, object]:
        request = urllib.request.Request(self.process.endpoint + path, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, raw = error.code, error.headers, error.read()
        content_type = headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            parsed = [json.loads(line) for line in raw.splitlines() if line.strip()]
            for value in parsed:
                (value.get("result") or value).pop("header", None)
            return status, content_type, parsed
        return status, content_type, raw

    def assert_serving(self) -> None:
        """A normal put and get still work, over gRPC and the gateway."""
        self.serving_checks += 1
        key = b"serving/%d" % self.serving_checks
        assert self.call("KV", "Put", R.PutRequest(key=key, value=b"ok"))[0] == "OK"
        status, _, body = self.http("/v3/kv/range", json.dumps({"key": _b64(key)}).encode())
        assert status == 200 and body[0]["kvs"][0]["value"] == _b64(b"ok"), body

    def close(self) -> None:
        self.channel.close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _start_pair(base, *flags) -> dict[str, Member]:
    started: dict[str, Member] = {}
    try:
        for kind in ("flotilla", "etcd"):
            started[kind] = Member(start_member(kind, base, *flags))
    except BaseException:
        _stop_pair(started)
        raise
    return started


def _stop_pair(pair: dict[str, Member]) -> None:
    for member in pair.values():
        member.close()
        member.process.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    members = _start_pair(tmp_path_factory.mktemp("bad-input"))
    yield members
    _stop_pair(members)


@pytest.fixture(scope="module")
def limited_pair(tmp_path_factory):
    members = _start_pair(
        tmp_path_factory.mktemp("bad-input-limits"), "--max-txn-ops", "4", "--max-request-bytes", "10000"
    )
    yield members
    _stop_pair(members)


def on_both(pair, action) -> dict:
    """Run ``action(member)`` on both members, check both still serve, return the answers."""
    answers = {kind: action(member) for kind, member in pair.items()}
    for member in pair.values():
        member.assert_serving()
    return answers


def assert_same(pair, action):
    answers = on_both(pair, action)
    assert answers["flotilla"] == answers["etcd"]
    return answers["etcd"]


def _put_op(key: bytes, **fields) -> rpc_pb2.RequestOp:
    return R.RequestOp(request_put=R.PutRequest(key=key, **fields))


def _delete(key: bytes) -> rpc_pb2.DeleteRangeRequest:
    return R.DeleteRangeRequest(key=key)


# --- gRPC -----------------------------------------------------------------------------------------

GRPC_CASES = {
    "put empty key": ("KV", "Put", R.PutRequest(value=b"v")),
    "range empty key": ("KV", "Range", R.RangeRequest()),
    "delete empty key": ("KV", "DeleteRange", R.DeleteRangeRequest()),
    "txn compare empty key": ("KV", "Txn", R.TxnRequest(compare=[R.Compare(key=b"")])),
    "txn put empty key": ("KV", "Txn", R.TxnRequest(success=[_put_op(b"")])),
    "txn range empty key": ("KV", "Txn", R.TxnRequest(success=[R.RequestOp(request_range=R.RangeRequest())])),
    "txn delete empty key": (
        "KV", "Txn", R.TxnRequest(failure=[R.RequestOp(request_delete_range=R.DeleteRangeRequest())]),
    ),
    "nested txn empty key": (
        "KV", "Txn", R.TxnRequest(success=[R.RequestOp(request_txn=R.TxnRequest(success=[_put_op(b"")]))]),
    ),
    "put just over max-request-bytes": ("KV", "Put", R.PutRequest(key=b"k", value=b"x" * MAX_REQUEST_BYTES)),
    "129 txn ops": ("KV", "Txn", R.TxnRequest(success=[_put_op(b"k%d" % i) for i in range(129)])),
    "129 txn compares": ("KV", "Txn", R.TxnRequest(compare=[R.Compare(key=b"k%d" % i) for i in range(129)])),
    "128 txn ops": ("KV", "Txn", R.TxnRequest(success=[_put_op(b"ops/%d" % i) for i in range(128)])),
    "txn duplicate put": ("KV", "Txn", R.TxnRequest(success=[_put_op(b"a"), _put_op(b"a")])),
    "txn put and delete": (
        "KV", "Txn", R.TxnRequest(success=[_put_op(b"a"), R.RequestOp(request_delete_range=_delete(b"a"))]),
    ),
    "put with unknown lease": ("KV", "Put", R.PutRequest(key=b"k", value=b"v", lease=12345)),
    "txn put with unknown lease": ("KV", "Txn", R.TxnRequest(success=[_put_op(b"k", lease=12345)])),
    "revoke unknown lease": ("Lease", "LeaseRevoke", R.LeaseRevokeRequest(ID=12345)),
    "time-to-live of unknown lease": (
        "Lease", "LeaseTimeToLive", R.LeaseTimeToLiveRequest(ID=12345, keys=True),
    ),
    "grant too long a TTL": ("Lease", "LeaseGrant", R.LeaseGrantRequest(TTL=9_000_000_001)),
    "range at a future revision": ("KV", "Range", R.RangeRequest(key=b"k", revision=1_000_000)),
    "compact at a future revision": ("KV", "Compact", R.CompactionRequest(revision=1_000_000)),
    "hash at a future revision": ("Maintenance", "HashKV", R.HashKVRequest(revision=1_000_000)),
    "compact at a negative revision": ("KV", "Compact", R.CompactionRequest(revision=-3)),
    "ignore_value with a value": ("KV", "Put", R.PutRequest(key=b"k", value=b"v", ignore_value=True)),
    "ignore_value of a missing key": ("KV", "Put", R.PutRequest(key=b"missing", ignore_value=True)),
    "ignore_lease with a lease": ("KV", "Put", R.PutRequest(key=b"k", lease=5, ignore_lease=True)),
    "range with a negative limit": ("KV", "Range", R.RangeRequest(key=b"nothing", limit=-1)),
}  # fmt: skip


@pytest.mark.parametrize("case", GRPC_CASES)
def test_grpc_bad_request(pair, case):
    service, method, request = GRPC_CASES[case]
    assert_same(pair, lambda m: m.call(service, method, request))


def test_grpc_over_the_message_limit_is_resource_exhausted(pair):
    request = R.PutRequest(key=b"k", value=b"x" * GRPC_LIMIT)
    answers = on_both(pair, lambda m: m.call("KV", "Put", request))
    assert answers["flotilla"][0] == answers["etcd"][0] == "RESOURCE_EXHAUSTED"


def test_grpc_over_the_message_limit_words(pair):
    request = R.PutRequest(key=b"k", value=b"x" * GRPC_LIMIT)
    assert_same(pair, lambda m: m.call("KV", "Put", request))


def test_keep_alive_of_unknown_lease(pair):
    def keep_alive(member):
        stub = rpc_pb2_grpc.LeaseStub(member.channel)
        responses = list(stub.LeaseKeepAlive(iter([R.LeaseKeepAliveRequest(ID=12345)]), timeout=10))
        return [(r.ID, r.TTL) for r in responses]

    assert assert_same(pair, keep_alive) == [(12345, 0)]


def test_compacted_revisions(pair):
    def scenario(member):
        revisions = [member_put(member, b"compacted/key", b"%d" % i) for i in range(4)]
        compact_at = revisions[2]
        answers = [member.call("KV", "Compact", R.CompactionRequest(revision=compact_at))]
        for before in (compact_at - 1, compact_at):
            old_range = R.RangeRequest(key=b"compacted/key", revision=before - 1)
            answers.append(member.call("KV", "Range", old_range))
            answers.append(member.call("KV", "Compact", R.CompactionRequest(revision=before)))
            answers.append(member.call("Maintenance", "HashKV", R.HashKVRequest(revision=before - 1)))
        txn = R.TxnRequest(
            success=[R.RequestOp(request_range=R.RangeRequest(key=b"compacted/key", revision=compact_at - 1))]
        )
        answers.append(member.call("KV", "Txn", txn))
        return [a if a[0] != "OK" else ("OK", "") for a in answers]

    answers = assert_same(pair, scenario)
    assert ("OUT_OF_RANGE", "etcdserver: mvcc: required revision has been compacted") in answers


def member_put(member: Member, key: bytes, value: bytes) -> int:
    stub = rpc_pb2_grpc.KVStub(member.channel)
    return stub.Put(R.PutRequest(key=key, value=value), timeout=10).header.revision


def test_limits_configured(limited_pair):
    cases = [
        ("KV", "Txn", R.TxnRequest(success=[_put_op(b"l%d" % i) for i in range(5)])),
        ("KV", "Txn", R.TxnRequest(success=[_put_op(b"l%d" % i) for i in range(4)])),
        ("KV", "Txn", R.TxnRequest(compare=[R.Compare(key=b"c%d" % i) for i in range(5)])),
        ("KV", "Put", R.PutRequest(key=b"k", value=b"x" * 10_001)),
        ("KV", "Put", R.PutRequest(key=b"k", value=b"x" * 9_000)),
        ("Lease", "LeaseGrant", R.LeaseGrantRequest(TTL=60, ID=77)),
        ("Lease", "LeaseGrant", R.LeaseGrantRequest(TTL=60, ID=77)),
    ]
    for service, method, request in cases:
        assert_same(limited_pair, lambda m, s=service, n=method, r=request: m.call(s, n, r))
    big = R.PutRequest(key=b"k", value=b"x" * (10_000 + 512 * 1024))
    answers = on_both(limited_pair, lambda m: m.call("KV", "Put", big))
    assert answers["flotilla"][0] == answers["etcd"][0] == "RESOURCE_EXHAUSTED"


RAW_PAYLOADS = {
    "truncated varint": b"\xff\xff\xff",
    "truncated bytes": b"\x0a\x05ab",
    "wrong wire type, no value": b"\x08",
    "negative length": b"\x12\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
    "illegal tag 0": b"\x00",
    "end group": b"\x0c",
}


@pytest.mark.parametrize("payload", RAW_PAYLOADS)
def test_malformed_protobuf(pair, payload):
    answer = assert_same(pair, lambda m: m.raw("/etcdserverpb.KV/Put", RAW_PAYLOADS[payload]))
    assert answer[0] == "INTERNAL"


def test_malformed_protobuf_keeps_member_serving(pair):
    answers = on_both(pair, lambda m: m.raw("/etcdserverpb.KV/Put", b"\x0a\x05ab"))
    assert answers["flotilla"][0] != "OK" and answers["etcd"][0] == "INTERNAL"


def test_malformed_protobuf_in_streams(pair):
    def streams(member):
        answers = []
        for path, first in (("/etcdserverpb.Watch/Watch", b"\x0a\x02\x0a\x00"),
                            ("/etcdserverpb.Lease/LeaseKeepAlive", b"\x08\x05")):  # fmt: skip
            call = member.channel.stream_stream(path, request_serializer=bytes, response_deserializer=bytes)
            try:
                list(call(iter([first, b"\xff"]), timeout=10))
                answers.append(("OK", ""))
            except grpc.RpcError as error:
                answers.append((error.code().name, error.details()))
        return answers

    assert assert_same(pair, streams)[0][0] == "INTERNAL"


def test_unknown_methods(pair):
    paths = ("/etcdserverpb.KV/Nope", "/etcdserverpb.Nope/Nope")
    assert_same(pair, lambda m: [m.raw(path, b"") for path in paths])


def test_negative_lease_id_keeps_member_serving(pair):
    member = pair["flotilla"]
    answer = member.call("Lease", "LeaseGrant", R.LeaseGrantRequest(TTL=60, ID=-5))
    assert answer[0] in ("OK", "INVALID_ARGUMENT")
    time.sleep(0.5)  # past a backend commit, where an unstorable lease would stop the member
    member.assert_serving()


def test_negative_lease_id_like_etcd(pair):
    assert_same(pair, lambda m: m.call("Lease", "LeaseGrant", R.LeaseGrantRequest(TTL=60, ID=-7)))


# --- JSON gateway ---------------------------------------------------------------------------------


def _json_put(i: int) -> dict:
    return {"request_put": {"key": _b64(b"g%d" % i)}}


def _big_put(value_bytes: int) -> bytes:
    return json.dumps({"key": _b64(b"k"), "value": _b64(b"x" * value_bytes)}).encode()


GATEWAY_CASES = {
    "truncated JSON": ("/v3/kv/put", b'{"key": "YQ==", "value": '),
    "bad JSON": ("/v3/kv/put", b"not json"),
    "double comma": ("/v3/kv/put", b'{"key": "YQ==",, }'),
    "missing colon": ("/v3/kv/put", b'{"key" "YQ=="}'),
    "bad escape": ("/v3/kv/put", b'{"key": "\\q"}'),
    "control character": ("/v3/kv/put", b'{"key": "a\nb"}'),
    "bad number": ("/v3/kv/put", b'{"key": 1.}'),
    "bad UTF-8": ("/v3/kv/put", b"\xff\xfe{}"),
    "array body": ("/v3/kv/put", b"[1,2]"),
    "string body": ("/v3/kv/put", b'"str"'),
    "number for bytes": ("/v3/kv/put", b'{"key": 5}'),
    "string for int64": ("/v3/kv/put", b'{"key": "YQ==", "lease": "abc"}'),
    "float for int64": ("/v3/kv/put", b'{"key": "YQ==", "lease": 1.5}'),
    "bool for int64": ("/v3/kv/put", b'{"key": "YQ==", "lease": true}'),
    "int64 overflow": ("/v3/kv/put", b'{"key": "YQ==", "lease": "99999999999999999999"}'),
    "empty string for int64": ("/v3/kv/put", b'{"key": "YQ==", "lease": ""}'),
    "string for bool": ("/v3/kv/put", b'{"key": "YQ==", "prev_kv": "yes"}'),
    "negative uint64": ("/v3/cluster/member/remove", b'{"ID": "-1"}'),
    "unknown enum name": ("/v3/kv/range", b'{"key": "YQ==", "sort_order": "SIDEWAYS"}'),
    "float enum": ("/v3/kv/range", b'{"key": "YQ==", "sort_order": 1.5}'),
    "object for repeated": ("/v3/kv/txn", b'{"success": {"request_put": {}}}'),
    "bad base64 character": ("/v3/kv/put", b'{"key": "a!b"}'),
    "base64 without padding": ("/v3/kv/put", b'{"key": "YQ"}'),
    "base64 short padding": ("/v3/kv/put", b'{"key": "YQ="}'),
    "url-safe base64": ("/v3/kv/put", b'{"key": "YWJj-_"}'),
    "empty key": ("/v3/kv/put", b'{"key": ""}'),
    "empty body": ("/v3/kv/put", b""),
    "range empty key": ("/v3/kv/range", b"{}"),
    "delete empty key": ("/v3/kv/deleterange", b"{}"),
    "txn empty key": ("/v3/kv/txn", b'{"success": [{"request_put": {}}]}'),
    "129 txn ops": ("/v3/kv/txn", json.dumps({"success": [_json_put(i) for i in range(129)]}).encode()),
    "txn duplicate key": (
        "/v3/kv/txn", b'{"success": [{"request_put": {"key": "YQ=="}}, {"request_put": {"key": "YQ=="}}]}',
    ),
    "put with unknown lease": ("/v3/kv/put", b'{"key": "YQ==", "lease": "12345"}'),
    "revoke unknown lease": ("/v3/lease/revoke", b'{"ID": "12345"}'),
    "time-to-live of unknown lease": ("/v3/lease/timetolive", b'{"ID": "12345"}'),
    "keep-alive of unknown lease": ("/v3/lease/keepalive", b'{"ID": "12345"}'),
    "stream with bad JSON": ("/v3/watch", b"garbage"),
    "stream with a wrong type": ("/v3/watch", b'{"create_request": {"key": 5}}'),
    "range at a future revision": ("/v3/kv/range", b'{"key": "YQ==", "revision": "1000000"}'),
    "compact at a future revision": ("/v3/kv/compaction", b'{"revision": "1000000"}'),
    "ignore_value with a value": ("/v3/kv/put", b'{"key": "YQ==", "value": "dg==", "ignore_value": true}'),
    "just over max-request-bytes": ("/v3/kv/put", _big_put(MAX_REQUEST_BYTES)),
    "over the gRPC message limit": ("/v3/kv/put", _big_put(GRPC_LIMIT)),
    "far over the gRPC message limit": ("/v3/kv/put", _big_put(3 * 1024 * 1024)),
    "unknown path": ("/v3/kv/nope", b"{}"),
    "unknown service path": ("/v3beta/nope", b"{}"),
}  # fmt: skip


@pytest.mark.parametrize("case", GATEWAY_CASES)
def test_gateway_bad_request(pair, case):
    path, body = GATEWAY_CASES[case]
    assert_same(pair, lambda m: m.http(path, body))


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/v3/kv/put", "/v3/kv/range", "/v3/nope"])
def test_gateway_wrong_method(pair, method, path):
    assert_same(pair, lambda m: m.http(path, None, method))

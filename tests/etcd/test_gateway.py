"""The v3 JSON gateway against fake servicers, with expectations taken from a real etcd 3.4.23.

REAL_ETCD below holds what Debian's etcd 3.4.23 answered to curl (2026-11, single member, fresh data dir;
cluster/member ids are that run's). The fakes answer with the same protos, so the gateway must produce the
same bytes.
"""

import asyncio
import json

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flotilla.etcd.api import kv_pb2, rpc_pb2
from flotilla.etcd.gateway import HTTP_STATUS, ROUTES, add_gateway_routes

# Request body -> (HTTP status, response body), from curl -X POST against etcd 3.4.23.
REAL_ETCD = {
    "put": ('{"key":"Zm9v","value":"YmFy"}', 200,
            '{"header":{"cluster_id":"16732456680828204454","member_id":"4748117162000321290","revision":"2",'
            '"raft_term":"2"}}'),
    "range": ('{"key":"Zm9v"}', 200,
              '{"header":{"cluster_id":"16732456680828204454","member_id":"4748117162000321290","revision":"2",'
              '"raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1",'
              '"value":"YmFy"}],"count":"1"}'),
    "range_missing": ('{"key":"bm9uZQ=="}', 200,
                      '{"header":{"cluster_id":"16732456680828204454","member_id":"4748117162000321290",'
                      '"revision":"2","raft_term":"2"}}'),
    "truncated_json": ('{"key":', 400, '{"error":"unexpected EOF","message":"unexpected EOF","code":3}'),
    "not_json": ("xyz", 400,
                 '{"error":"invalid character \'x\' looking for beginning of value",'
                 '"message":"invalid character \'x\' looking for beginning of value","code":3}'),
    "array": ("[]", 400,
              '{"error":"json: cannot unmarshal array into Go value of type map[string]json.RawMessage",'
              '"message":"json: cannot unmarshal array into Go value of type map[string]json.RawMessage",'
              '"code":3}'),
    # Go's messages for field-level errors differ from ours; only status and code are compared for these.
    "wrong_type": ('{"key":1}', 400,
                   '{"error":"json: cannot unmarshal number into Go value of type []uint8",'
                   '"message":"json: cannot unmarshal number into Go value of type []uint8","code":3}'),
    "bad_enum": ('{"key":"Zm9v","sort_order":"BAD"}', 400,
                 '{"error":"unknown value \\"BAD\\" for enum etcdserverpb.RangeRequest_SortOrder",'
                 '"message":"unknown value \\"BAD\\" for enum etcdserverpb.RangeRequest_SortOrder",'
                 '"code":3}'),
    "string_bool": ('{"key":"Zm9v","serializable":"true"}', 400,
                    '{"error":"json: cannot unmarshal string into Go value of type bool",'
                    '"message":"json: cannot unmarshal string into Go value of type bool","code":3}'),
    "future_revision": ('{"key":"Zm9v","revision":"100"}', 400,
                        '{"error":"etcdserver: mvcc: required revision is a future revision",'
                        '"message":"etcdserver: mvcc: required revision is a future revision","code":11}'),
    "bad_base64": ('{"key":"!!"}', 400,
                   '{"error":"illegal base64 data at input byte 0",'
                   '"message":"illegal base64 data at input byte 0","code":3}'),
    "empty_body_range": ("", 400,
                         '{"error":"etcdserver: key is not provided",'
                         '"message":"etcdserver: key is not provided","code":3}'),
    "lease_not_found": ('{"ID":"12345"}', 404,
                        '{"error":"etcdserver: requested lease not found",'
                        '"message":"etcdserver: requested lease not found","code":5}'),
    "user_not_found": ('{"name":"x"}', 412,
                       '{"error":"etcdserver: user name not found",'
                       '"message":"etcdserver: user name not found","code":9}'),
    "status": ("{}", 200,
               '{"header":{"cluster_id":"16732456680828204454","member_id":"4748117162000321290",'
               '"revision":"3","raft_term":"2"},"version":"3.4.23","dbSize":"20480",'
               '"leader":"4748117162000321290","raftIndex":"6","raftTerm":"2","raftAppliedIndex":"6",'
               '"dbSizeInUse":"16384"}'),
    "hash": ("{}", 200,
             '{"header":{"cluster_id":"16732456680828204454","member_id":"4748117162000321290","revision":"7",'
             '"raft_term":"2"},"hash":156661286}'),
    "alarm_none": ("{}", 200, "{}"),
    # Watch body: two concatenated create requests; then a put and a delete with prev_kv on key "a".
    "watch": ('{"create_request":{"key":"Zm9v","start_revision":"2"}} '
              '{"create_request":{"key":"YQ==","prev_kv":true}}', 200,
              '{"result":{"header":{"cluster_id":"16732456680828204454","member_id":"4748117162000321290",'
              '"revision":"5","raft_term":"2"},"created":true}}\n'
              '{"result":{"header":{"cluster_id":"16732456680828204454","member_id":"4748117162000321290",'
              '"revision":"5","raft_term":"2"},"watch_id":"1","created":true}}\n'
              '{"result":{"header":{"cluster_id":"16732456680828204454","member_id":"4748117162000321290",'
              '"revision":"7","raft_term":"2"},"watch_id":"1","events":[{"type":"DELETE","kv":{"key":"YQ==",'
              '"mod_revision":"7"},"prev_kv":{"key":"YQ==","create_revision":"6","mod_revision":"6",'
              '"version":"1","value":"Yw=="}}]}}\n'),
    "keepalive_two": ('{"ID":"1"}{"ID":"795626413332245007"}', 200,
                      '{"result":{"header":{"cluster_id":"16732456680828204454",'
                      '"member_id":"4748117162000321290","revision":"7","raft_term":"2"},"ID":"1"}}\n'
                      '{"result":{"header":{"cluster_id":"16732456680828204454",'
                      '"member_id":"4748117162000321290","revision":"7","raft_term":"2"},'
                      '"ID":"795626413332245007","TTL":"60"}}\n'),
    "watch_not_json": ("xyz", 500,
                       '{"error":"invalid character \'x\' looking for beginning of value",'
                       '"message":"invalid character \'x\' looking for beginning of value","code":2}'),
}  # fmt: skip
# Also observed: GET on a gateway path -> 405 text "Method Not Allowed"; /v3/maintenance/hashkv -> 404 (3.4
# binds HashKV to /v3/maintenance/hash, where Hash answers); unknown JSON fields ignored; trailing bytes
# after the first JSON value of a unary body ignored; camelCase ("countOnly") and numbers as strings or
# numbers accepted; success responses carry "Grpc-Metadata-Content-Type: application/grpc"; a snapshot
# streams {"result":{"blob":...}} lines. Errors also carry a "Trailer: Grpc-Trailer-Content-Type" header and
# an HTTP trailer, a grpc-gateway quirk no client reads (not reproduced).

CLUSTER_ID = 16732456680828204454
MEMBER_ID = 4748117162000321290


def _header(revision: int) -> rpc_pb2.ResponseHeader:
    return rpc_pb2.ResponseHeader(cluster_id=CLUSTER_ID, member_id=MEMBER_ID, revision=revision, raft_term=2)


def _kv(key, value, create, mod, version):
    return kv_pb2.KeyValue(key=key, value=value, create_revision=create, mod_revision=mod, version=version)


class FakeKV:
    """Answers like the etcd above after `put foo bar`; records what it was given."""

    def __init__(self):
        self.requests = []
        self.metadata = None

    async def Range(self, request, context):
        self.requests.append(request)
        self.metadata = context.invocation_metadata()
        if not request.key:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided")
        if request.revision > 2:
            future = "etcdserver: mvcc: required revision is a future revision"
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, future)
        if request.key != b"foo":
            return rpc_pb2.RangeResponse(header=_header(2))
        return rpc_pb2.RangeResponse(header=_header(2), kvs=[_kv(b"foo", b"bar", 2, 2, 1)], count=1)

    async def Put(self, request, context):
        self.requests.append(request)
        return rpc_pb2.PutResponse(header=_header(2))

    async def Txn(self, request, context):
        raise RuntimeError("boom")

    async def Compact(self, request, context):
        context.set_code(grpc.StatusCode.UNAVAILABLE)
        context.set_details("etcdserver: no leader")
        return rpc_pb2.CompactionResponse()


class FakeLease:
    def __init__(self):
        self.closed = asyncio.Event()

    async def LeaseRevoke(self, request, context):
        await context.abort(grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")

    async def LeaseKeepAlive(self, request_iterator, context):
        async for request in request_iterator:
            ttl = 60 if request.ID == 795626413332245007 else 0
            yield rpc_pb2.LeaseKeepAliveResponse(header=_header(7), ID=request.ID, TTL=ttl)


class FakeWatch:
    """Replays the watch above; then fails if asked to (key "err"), else waits until cancelled."""

    def __init__(self):
        self.cancelled = asyncio.Event()

    async def Watch(self, request_iterator, context):
        created = 0
        try:
            async for request in request_iterator:
                if request.create_request.key == b"err":
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
                yield rpc_pb2.WatchResponse(header=_header(5), watch_id=created, created=True)
                created += 1
            if created < 2:
                return
            event = kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"a", mod_revision=7),
                                 prev_kv=_kv(b"a", b"c", 6, 6, 1))  # fmt: skip
            yield rpc_pb2.WatchResponse(header=_header(7), watch_id=1, events=[event])
            if ("hold", "1") in context.invocation_metadata():
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


class FakeMaintenance:
    async def Status(self, request, context):
        return rpc_pb2.StatusResponse(
            header=_header(3), version="3.4.23", dbSize=20480, leader=MEMBER_ID, raftIndex=6, raftTerm=2,
            raftAppliedIndex=6, dbSizeInUse=16384,
        )

    async def Hash(self, request, context):
        return rpc_pb2.HashResponse(header=_header(7), hash=156661286)

    async def HashKV(self, request, context):
        raise AssertionError("etcd 3.4's gateway never reaches HashKV")

    async def Alarm(self, request, context):
        return rpc_pb2.AlarmResponse()

    async def Snapshot(self, request, context):
        yield rpc_pb2.SnapshotResponse(header=_header(7), remaining_bytes=3, blob=b"\0\1\2")
        yield rpc_pb2.SnapshotResponse(remaining_bytes=0, blob=b"\3")


class FakeAuth:
    async def UserGet(self, request, context):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: user name not found")


def _run(test):
    """Run ``test(client, fakes)`` against a gateway app on a loopback port."""

    async def main():
        fakes = {"KV": FakeKV(), "Lease": FakeLease(), "Watch": FakeWatch(), "Maintenance": FakeMaintenance(),
                 "Auth": FakeAuth()}  # fmt: skip
        app = web.Application()
        add_gateway_routes(app, fakes)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await asyncio.wait_for(test(client, fakes), timeout=10)

    asyncio.run(main())


def _check_real(path: str, case: str, compare_body: bool = True):
    body, status, expected = REAL_ETCD[case]

    async def test(client, fakes):
        response = await client.post(path, data=body)
        assert response.status == status
        assert response.headers["Content-Type"] == "application/json"
        text = await response.text()
        if compare_body:
            assert text == expected
        else:
            assert list(json.loads(text)) == ["error", "message", "code"]
            assert json.loads(text)["code"] == json.loads(expected)["code"]

    _run(test)


@pytest.mark.parametrize(
    ("path", "case"),
    [
        ("/v3/kv/put", "put"),
        ("/v3/kv/range", "range"),
        ("/v3/kv/range", "range_missing"),
        ("/v3/kv/range", "truncated_json"),
        ("/v3/kv/range", "not_json"),
        ("/v3/kv/range", "array"),
        ("/v3/kv/range", "bad_base64"),
        ("/v3/kv/range", "future_revision"),
        ("/v3/kv/range", "empty_body_range"),
        ("/v3/lease/revoke", "lease_not_found"),
        ("/v3/kv/lease/revoke", "lease_not_found"),
        ("/v3/auth/user/get", "user_not_found"),
        ("/v3/maintenance/status", "status"),
        ("/v3/maintenance/hash", "hash"),
        ("/v3/maintenance/alarm", "alarm_none"),
        ("/v3beta/kv/range", "range"),
        ("/v3/watch", "watch_not_json"),
    ],
)
def test_unary_answers_like_etcd(path, case):
    _check_real(path, case)


@pytest.mark.parametrize("case", ["wrong_type", "bad_enum", "string_bool"])
def test_field_errors_are_invalid_argument(case):
    _check_real("/v3/kv/range", case, compare_body=False)


def test_success_headers():
    async def test(client, fakes):
        response = await client.post("/v3/kv/put", data=REAL_ETCD["put"][0])
        assert response.headers["Grpc-Metadata-Content-Type"] == "application/grpc"
        assert fakes["KV"].requests[-1] == rpc_pb2.PutRequest(key=b"foo", value=b"bar")

    _run(test)


def test_request_json_conventions():
    async def test(client, fakes):
        body = ('{"key":"Zm9v","countOnly":true,"limit":1,"revision":"2","sort_order":"DESCEND",'
                '"sortTarget":2,"bogus":{"x":1}} trailing garbage is ignored')  # fmt: skip
        response = await client.post("/v3/kv/range", data=body)
        assert response.status == 200
        assert fakes["KV"].requests[-1] == rpc_pb2.RangeRequest(
            key=b"foo", count_only=True, limit=1, revision=2,
            sort_order=rpc_pb2.RangeRequest.DESCEND, sort_target=rpc_pb2.RangeRequest.CREATE,
        )  # fmt: skip
        # An empty body is the empty message (the fake then refuses the empty key, as etcd does).
        response = await client.post("/v3/kv/range", data="")
        assert fakes["KV"].requests[-1] == rpc_pb2.RangeRequest()

    _run(test)


@pytest.mark.parametrize(("code", "http"), [
    ("INVALID_ARGUMENT", 400), ("NOT_FOUND", 404), ("OUT_OF_RANGE", 400), ("RESOURCE_EXHAUSTED", 429),
    ("UNAVAILABLE", 503), ("FAILED_PRECONDITION", 412), ("UNAUTHENTICATED", 401), ("PERMISSION_DENIED", 403),
    ("UNKNOWN", 500), ("DEADLINE_EXCEEDED", 504), ("CANCELLED", 408), ("ALREADY_EXISTS", 409),
])  # fmt: skip
def test_http_status_of_grpc_codes(code, http):
    assert HTTP_STATUS[grpc.StatusCode[code]] == http


def test_set_code_and_servicer_exceptions():
    async def test(client, fakes):
        response = await client.post("/v3/kv/compaction", data='{"revision":"1"}')
        assert response.status == 503
        assert await response.text() == (
            '{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}'
        )
        response = await client.post("/v3/kv/txn", data="{}")
        assert response.status == 500
        assert (await response.json())["code"] == 2

    _run(test)


def test_routes_methods_and_missing_services():
    async def test(client, fakes):
        response = await client.get("/v3/kv/range")
        assert (response.status, await response.text()) == (405, "Method Not Allowed\n")
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert (await client.post("/v3/maintenance/hashkv", data="{}")).status == 404
        # No Cluster servicer given, and a servicer without the method: grpc's Unimplemented.
        response = await client.post("/v3/cluster/member/list", data="{}")
        assert response.status == 501
        assert await response.json() == {"error": "unknown service etcdserverpb.Cluster",
                                         "message": "unknown service etcdserverpb.Cluster", "code": 12}
        response = await client.post("/v3/auth/enable", data="{}")
        assert (response.status, (await response.json())["code"]) == (501, 12)

    _run(test)


def test_route_table_covers_every_gateway_method():
    paths = {route.path for route in ROUTES}
    assert len(paths) == len(ROUTES) == 41
    methods = {(route.service, route.method) for route in ROUTES}
    for service in rpc_pb2.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            if (service.name, method.name) != ("Maintenance", "HashKV"):
                assert (service.name, method.name) in methods


def test_metadata_forwarded_like_grpc_gateway():
    async def test(client, fakes):
        headers = {"Authorization": "tok", "Grpc-Metadata-Token": "abc", "X-Other": "dropped"}
        await client.post("/v3/kv/range", data='{"key":"Zm9v"}', headers=headers)
        metadata = dict(fakes["KV"].metadata)
        assert metadata["authorization"] == "tok"
        assert metadata["token"] == "abc"
        assert metadata["grpcgateway-authorization"] == "tok"
        assert "x-other" not in metadata and "grpcgateway-x-other" not in metadata
        assert metadata["x-forwarded-for"] == "127.0.0.1"

    _run(test)


def test_watch_stream_lines():
    async def test(client, fakes):
        body, status, expected = REAL_ETCD["watch"]
        for prefix in ("/v3", "/v3beta"):
            response = await client.post(prefix + "/watch", data=body)
            assert response.status == status
            assert response.headers["Content-Type"] == "application/json"
            text = await response.text()
            lines = expected.splitlines(keepends=True)
            # The real stream also had the replayed events of watch 0 and the put; the fake skips them.
            assert text == lines[0] + lines[1] + lines[2]

    _run(test)


def test_keepalive_stream_of_concatenated_requests():
    async def test(client, fakes):
        body, status, expected = REAL_ETCD["keepalive_two"]
        response = await client.post("/v3/lease/keepalive", data=body)
        assert response.status == status
        assert await response.text() == expected
        # No request at all: an empty 200 stream.
        response = await client.post("/v3/lease/keepalive", data="")
        assert (response.status, await response.text()) == (200, "")

    _run(test)


def test_snapshot_server_stream():
    async def test(client, fakes):
        response = await client.post("/v3/maintenance/snapshot", data="{}")
        lines = (await response.text()).splitlines()
        assert [json.loads(line)["result"]["blob"] for line in lines] == ["AAEC", "Aw=="]
        assert json.loads(lines[0])["result"]["remaining_bytes"] == "3"

    _run(test)


def test_stream_errors():
    async def test(client, fakes):
        # Failing before any message: that HTTP status, and grpc-gateway's stream error chunk.
        response = await client.post("/v3/watch", data='{"create_request":{"key":"ZXJy"}}')
        assert response.status == 503
        assert await response.text() == (
            '{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader",'
            '"http_status":"Service Unavailable"}}'
        )
        # Failing after a message: 200, the message, then the error chunk.
        body = '{"create_request":{"key":"YQ=="}} {"create_request":{"key":"ZXJy"}}'
        response = await client.post("/v3/watch", data=body)
        assert response.status == 200
        first, error = (await response.text()).split("\n")
        assert json.loads(first)["result"]["created"] is True
        assert json.loads(error)["error"]["grpc_code"] == 14

    _run(test)


def test_client_disconnect_cancels_the_watch():
    async def test(client, fakes):
        body = REAL_ETCD["watch"][0]
        response = await client.post("/v3/watch", data=body, headers={"Grpc-Metadata-Hold": "1"})
        assert response.status == 200
        for _ in range(3):
            assert (await response.content.readline()).startswith(b'{"result"')
        response.close()
        await asyncio.wait_for(fakes["Watch"].cancelled.wait(), timeout=3)

    _run(test)

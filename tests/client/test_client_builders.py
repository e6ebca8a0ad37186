"""The client's pure parts, without a server: prefix ranges, comparison and operation builders, endpoint
parsing, the mapping of gRPC statuses to the error tree and the rule for retrying elsewhere."""

from __future__ import annotations

import grpc
import pytest

from flotilla.client import (
    ClientError,
    Compacted,
    Compare,
    DeadlineExceeded,
    EtcdClient,
    LeaseNotFound,
    NoLeader,
    Op,
    PermissionDenied,
    TlsConfig,
    Unavailable,
    prefix_range_end,
)
from flotilla.client._transport import parse_endpoint, retryable
from flotilla.client.errors import from_rpc_error
from flotilla.etcd.api import rpc_pb2


@pytest.mark.parametrize(
    "prefix, end",
    [(b"a/", b"a0"), (b"ab", b"ac"), (b"a\xff", b"b"), (b"\xff\xff", b"\0"), (b"", b"\0")],
)
def test_prefix_range_end_is_clientv3s(prefix, end):
    assert prefix_range_end(prefix) == end


def test_compare_operators_build_etcd_compares():
    absent = (Compare.create_revision("k") == 0).to_pb()
    assert (absent.key, absent.target, absent.result, absent.create_revision) == (
        b"k", rpc_pb2.Compare.CREATE, rpc_pb2.Compare.EQUAL, 0,
    )  # fmt: skip
    assert (Compare.mod_revision(b"k") != 3).to_pb().result == rpc_pb2.Compare.NOT_EQUAL
    assert (Compare.version("k") > 0).to_pb().result == rpc_pb2.Compare.GREATER
    assert (Compare.lease("k") < 9).to_pb().lease == 9
    value = (Compare.value("k", prefix=True) == "v").to_pb()
    assert (value.target, value.value, value.range_end) == (rpc_pb2.Compare.VALUE, b"v", b"l")
    with pytest.raises(TypeError):
        Compare.mod_revision("k") == "3"  # noqa: B015 - the comparison raises


def test_ops_build_request_ops():
    put = Op.put("k", b"v", lease=7, prev_kv=True).request.request_put
    assert (put.key, put.value, put.lease, put.prev_kv) == (b"k", b"v", 7, True)
    delete = Op.delete("d/", prefix=True).request.request_delete_range
    assert (delete.key, delete.range_end) == (b"d/", b"d0")
    get = Op.get("k", keys_only=True).request.request_range
    assert (get.key, get.range_end, get.keys_only) == (b"k", b"", True)


@pytest.mark.parametrize(
    "url, target, secure",
    [
        ("http://127.0.0.1:12379", "127.0.0.1:12379", False),
        ("https://node1:12379/", "node1:12379", True),
        ("127.0.0.1:12379", "127.0.0.1:12379", False),
        ("unix:///run/etcd.sock", "unix:/run/etcd.sock", False),
    ],
)
def test_endpoints_parse_to_dial_targets(url, target, secure):
    endpoint = parse_endpoint(url, None)
    assert (endpoint.url, endpoint.target, endpoint.secure) == (url, target, secure)


def test_a_bare_endpoint_uses_tls_when_configured_and_bad_ones_are_refused():
    assert parse_endpoint("h:1", TlsConfig(ca_file="/ca.pem")).secure
    for bad in ("ftp://h:1", "http://host-without-port", ""):
        with pytest.raises(ValueError, match="endpoint"):
            parse_endpoint(bad, None)
    with pytest.raises(ValueError, match="at least one endpoint"):
        EtcdClient([])


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(
    "code, details, cls",
    [
        (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader", NoLeader),
        (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", DeadlineExceeded),
        (grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted", Compacted),
        (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found", LeaseNotFound),
        (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied", PermissionDenied),
        (grpc.StatusCode.DATA_LOSS, "etcdserver: corrupt cluster", ClientError),
    ],
)
def test_statuses_map_to_the_error_tree_with_what_and_where(code, details, cls):
    error = from_rpc_error(_rpc_error(code, details), "put 'k'", "http://127.0.0.1:12379", lease_id=5)
    assert type(error) is cls
    assert str(error).startswith(f"put 'k' failed on http://127.0.0.1:12379: {details} (")
    assert error.code is code


def test_only_unsent_or_unapplied_failures_of_non_idempotent_calls_are_retried():
    refused = _rpc_error(
        grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; Connection refused"
    )
    lost = _rpc_error(grpc.StatusCode.UNAVAILABLE, "Socket closed")
    no_leader = _rpc_error(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
    slow = _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    bad = _rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided")
    assert [retryable(e, idempotent=False) for e in (refused, lost, no_leader, slow, bad)] == [
        True, False, True, False, False,
    ]  # fmt: skip
    assert [retryable(e, idempotent=True) for e in (refused, lost, no_leader, slow, bad)] == [
        True, True, True, True, False,
    ]  # fmt: skip

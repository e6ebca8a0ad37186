"""The v3 wire contract: our .proto files against etcd 3.4's published field numbers and real clients' protos.

Field numbers, names and service paths are what etcdctl, etcd3, aetcd and etcd3gw put on the wire.
The tables below are typed from etcd 3.4.23's rpc.proto, kv.proto and raft_internal.proto.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from google.protobuf import descriptor, json_format

from flotilla.etcd.api import (
    auth_pb2,
    etcdserver_pb2,
    kv_pb2,
    lease_pb2,
    raft_internal_pb2,
    rpc_pb2,
    rpc_pb2_grpc,
)

FIELD_NUMBERS = {
    rpc_pb2.ResponseHeader: {"cluster_id": 1, "member_id": 2, "revision": 3, "raft_term": 4},
    rpc_pb2.RangeRequest: {
        "key": 1, "range_end": 2, "limit": 3, "revision": 4, "sort_order": 5, "sort_target": 6,
        "serializable": 7, "keys_only": 8, "count_only": 9, "min_mod_revision": 10, "max_mod_revision": 11,
        "min_create_revision": 12, "max_create_revision": 13,
    },
    rpc_pb2.RangeResponse: {"header": 1, "kvs": 2, "more": 3, "count": 4},
    rpc_pb2.PutRequest: {
        "key": 1, "value": 2, "lease": 3, "prev_kv": 4, "ignore_value": 5, "ignore_lease": 6,
    },
    rpc_pb2.DeleteRangeResponse: {"header": 1, "deleted": 2, "prev_kvs": 3},
    rpc_pb2.RequestOp: {"request_range": 1, "request_put": 2, "request_delete_range": 3, "request_txn": 4},
    rpc_pb2.Compare: {
        "result": 1, "target": 2, "key": 3, "version": 4, "create_revision": 5, "mod_revision": 6,
        "value": 7, "lease": 8, "range_end": 64,
    },
    rpc_pb2.TxnRequest: {"compare": 1, "success": 2, "failure": 3},
    rpc_pb2.WatchCreateRequest: {
        "key": 1, "range_end": 2, "start_revision": 3, "progress_notify": 4, "filters": 5, "prev_kv": 6,
        "watch_id": 7, "fragment": 8,
    },
    rpc_pb2.WatchResponse: {
        "header": 1, "watch_id": 2, "created": 3, "canceled": 4, "compact_revision": 5, "cancel_reason": 6,
        "fragment": 7, "events": 11,
    },
    rpc_pb2.LeaseTimeToLiveResponse: {"header": 1, "ID": 2, "TTL": 3, "grantedTTL": 4, "keys": 5},
    rpc_pb2.Member: {"ID": 1, "name": 2, "peerURLs": 3, "clientURLs": 4, "isLearner": 5},
    rpc_pb2.StatusResponse: {
        "header": 1, "version": 2, "dbSize": 3, "leader": 4, "raftIndex": 5, "raftTerm": 6,
        "raftAppliedIndex": 7, "errors": 8, "dbSizeInUse": 9, "isLearner": 10,
    },
    rpc_pb2.AlarmRequest: {"action": 1, "memberID": 2, "alarm": 3},
    rpc_pb2.LeaseCheckpoint: {"ID": 1, "remaining_TTL": 2},
    kv_pb2.KeyValue: {
        "key": 1, "create_revision": 2, "mod_revision": 3, "version": 4, "value": 5, "lease": 6,
    },
    kv_pb2.Event: {"type": 1, "kv": 2, "prev_kv": 3},
    auth_pb2.Permission: {"permType": 1, "key": 2, "range_end": 3},
    lease_pb2.Lease: {"ID": 1, "TTL": 2, "RemainingTTL": 3},
    raft_internal_pb2.RequestHeader: {"ID": 1, "username": 2, "auth_revision": 3},
    raft_internal_pb2.InternalRaftRequest: {
        "header": 100, "ID": 1, "v2": 2, "range": 3, "put": 4, "delete_range": 5, "txn": 6, "compaction": 7,
        "lease_grant": 8, "lease_revoke": 9, "alarm": 10, "lease_checkpoint": 11, "auth_enable": 1000,
        "auth_disable": 1011, "authenticate": 1012, "auth_user_add": 1100, "auth_user_delete": 1101,
        "auth_user_get": 1102, "auth_user_change_password": 1103, "auth_user_grant_role": 1104,
        "auth_user_revoke_role": 1105, "auth_user_list": 1106, "auth_role_list": 1107, "auth_role_add": 1200,
        "auth_role_delete": 1201, "auth_role_get": 1202, "auth_role_grant_permission": 1203,
        "auth_role_revoke_permission": 1204,
    },
    etcdserver_pb2.Request: {
        "ID": 1, "Method": 2, "Path": 3, "Val": 4, "Dir": 5, "PrevValue": 6, "PrevIndex": 7, "PrevExist": 8,
        "Expiration": 9, "Wait": 10, "Since": 11, "Recursive": 12, "Sorted": 13, "Quorum": 14, "Time": 15,
        "Stream": 16, "Refresh": 17,
    },
}  # fmt: skip

ENUMS = {
    kv_pb2.Event.EventType: {"PUT": 0, "DELETE": 1},
    rpc_pb2.RangeRequest.SortOrder: {"NONE": 0, "ASCEND": 1, "DESCEND": 2},
    rpc_pb2.RangeRequest.SortTarget: {"KEY": 0, "VERSION": 1, "CREATE": 2, "MOD": 3, "VALUE": 4},
    rpc_pb2.Compare.CompareResult: {"EQUAL": 0, "GREATER": 1, "LESS": 2, "NOT_EQUAL": 3},
    rpc_pb2.Compare.CompareTarget: {"VERSION": 0, "CREATE": 1, "MOD": 2, "VALUE": 3, "LEASE": 4},
    rpc_pb2.WatchCreateRequest.FilterType: {"NOPUT": 0, "NODELETE": 1},
    rpc_pb2.AlarmType: {"NONE": 0, "NOSPACE": 1, "CORRUPT": 2},
    rpc_pb2.AlarmRequest.AlarmAction: {"GET": 0, "ACTIVATE": 1, "DEACTIVATE": 2},
    auth_pb2.Permission.Type: {"READ": 0, "WRITE": 1, "READWRITE": 2},
}

# Method name -> (client streaming, server streaming); everything else is unary.
SERVICES = {
    "KV": {"Range": "", "Put": "", "DeleteRange": "", "Txn": "", "Compact": ""},
    "Watch": {"Watch": "bidi"},
    "Lease": {
        "LeaseGrant": "", "LeaseRevoke": "", "LeaseKeepAlive": "bidi", "LeaseTimeToLive": "",
        "LeaseLeases": "",
    },
    "Cluster": {
        "MemberAdd": "", "MemberRemove": "", "MemberUpdate": "", "MemberList": "", "MemberPromote": "",
    },
    "Maintenance": {
        "Alarm": "", "Status": "", "Defragment": "", "Hash": "", "HashKV": "", "Snapshot": "server",
        "MoveLeader": "",
    },
    "Auth": {
        name: ""
        for name in (
            "AuthEnable AuthDisable Authenticate UserAdd UserGet UserList UserDelete UserChangePassword "
            "UserGrantRole UserRevokeRole RoleAdd RoleGet RoleList RoleDelete RoleGrantPermission "
            "RoleRevokePermission"
        ).split()
    },
}  # fmt: skip


@pytest.mark.parametrize("message", list(FIELD_NUMBERS), ids=lambda m: m.DESCRIPTOR.full_name)
def test_field_numbers_match_etcd_3_4(message):
    fields = {field.name: field.number for field in message.DESCRIPTOR.fields}
    assert fields == FIELD_NUMBERS[message]


def test_packages_and_enums():
    assert rpc_pb2.DESCRIPTOR.package == "etcdserverpb"
    assert raft_internal_pb2.DESCRIPTOR.package == "etcdserverpb"
    assert kv_pb2.DESCRIPTOR.package == "mvccpb"
    assert auth_pb2.DESCRIPTOR.package == "authpb"
    assert lease_pb2.DESCRIPTOR.package == "leasepb"
    for enum, values in ENUMS.items():
        assert dict(enum.items()) == values, enum.DESCRIPTOR.full_name


def test_services_methods_and_streaming():
    services = rpc_pb2.DESCRIPTOR.services_by_name
    assert set(services) == set(SERVICES)
    for service_name, methods in SERVICES.items():
        service = services[service_name]
        assert service.full_name == f"etcdserverpb.{service_name}"
        assert {m.name for m in service.methods} == set(methods)
        for method in service.methods:
            kind = methods[method.name]
            assert method.client_streaming == (kind == "bidi"), method.full_name
            assert method.server_streaming == (kind in ("bidi", "server")), method.full_name


class _RecordingChannel:
    """Stands in for a grpc.Channel: records the method paths a generated stub asks for."""

    def __init__(self):
        self.paths = []

    def _record(self, path, *args, **kwargs):
        self.paths.append(path)
        return object()

    unary_unary = unary_stream = stream_unary = stream_stream = _record


def test_stub_paths_are_etcds():
    channel = _RecordingChannel()
    for service in SERVICES:
        getattr(rpc_pb2_grpc, f"{service}Stub")(channel)
    expected = {
        f"/etcdserverpb.{service}/{method}" for service, methods in SERVICES.items() for method in methods
    }
    assert set(channel.paths) == expected
    assert "/etcdserverpb.KV/Range" in channel.paths
    assert "/etcdserverpb.Maintenance/HashKV" in channel.paths


# --- cross-check with the protos generated inside real client packages ---
# They register the same full names (etcdserverpb.*) in protobuf's default pool as ours, so they are loaded
# in a child process that prints their descriptors and serialized sample messages.

_CHILD = r"""
import importlib, json, sys
from google.protobuf import json_format
package, samples = sys.argv[1], json.loads(sys.stdin.read())
modules = [importlib.import_module(f"{package}.{name}") for name in ("rpc_pb2", "kv_pb2", "auth_pb2")]
fields = {}
def walk(message):
    fields[message.full_name] = {f.name: [f.number, f.type] for f in message.fields}
    for nested in message.nested_types:
        walk(nested)
classes = {}
for module in modules:
    for message in module.DESCRIPTOR.message_types_by_name.values():
        walk(message)
        classes[message.full_name] = getattr(module, message.name)
encoded = [json_format.ParseDict(body, classes[name]()).SerializeToString().hex() for name, body in samples]
print(json.dumps({"fields": fields, "encoded": encoded}))
"""

# (message full name, JSON body): exercises nesting, oneofs, enums, repeated and 64-bit fields. Only fields
# etcd 3.3 already had: etcd3 0.12's protos are that old.
SAMPLES = [
    ("etcdserverpb.RangeRequest", {"key": "YQ==", "range_end": "Yg==", "limit": "5", "revision": "-1",
                                   "sort_order": "DESCEND", "sort_target": "MOD", "serializable": True,
                                   "keys_only": True, "count_only": True, "min_mod_revision": "2",
                                   "max_mod_revision": "3", "min_create_revision": "4",
                                   "max_create_revision": "9223372036854775807"}),
    ("etcdserverpb.RangeResponse", {"header": {"cluster_id": "18446744073709551615", "member_id": "7",
                                               "revision": "12", "raft_term": "3"},
                                    "kvs": [{"key": "YQ==", "create_revision": "2", "mod_revision": "5",
                                             "version": "3", "value": "dg==", "lease": "1"}],
                                    "more": True, "count": "2"}),
    ("etcdserverpb.TxnRequest", {"compare": [{"result": "NOT_EQUAL", "target": "VALUE", "key": "YQ==",
                                              "value": "eA=="},
                                             {"result": "LESS", "target": "MOD", "key": "Yg==",
                                              "mod_revision": "4"}],
                                 "success": [{"request_put": {"key": "YQ==", "value": "eQ==", "lease": "8",
                                                              "prev_kv": True}}],
                                 "failure": [{"request_delete_range": {"key": "YQ==", "range_end": "AA==",
                                                                       "prev_kv": True}},
                                             {"request_range": {"key": "Yw=="}}]}),
    ("etcdserverpb.WatchRequest", {"create_request": {"key": "YQ==", "range_end": "Yg==",
                                                      "start_revision": "7", "progress_notify": True,
                                                      "filters": ["NODELETE"], "prev_kv": True}}),
    ("etcdserverpb.WatchResponse", {"header": {"revision": "9"}, "watch_id": "1", "created": True,
                                    "events": [{"type": "DELETE", "kv": {"key": "YQ==", "mod_revision": "9"},
                                                "prev_kv": {"key": "YQ==", "value": "dg=="}}]}),
    ("etcdserverpb.LeaseTimeToLiveResponse", {"ID": "7587862072119939850", "TTL": "-1", "grantedTTL": "60",
                                              "keys": ["YQ==", "Yg=="]}),
    ("etcdserverpb.MemberListResponse", {"members": [{"ID": "10276657743932975437", "name": "default",
                                                      "peerURLs": ["http://localhost:2380"],
                                                      "clientURLs": ["http://localhost:2379"]}]}),
    ("etcdserverpb.StatusResponse", {"version": "3.4.23", "dbSize": "20480", "leader": "5", "raftIndex": "4",
                                     "raftTerm": "2"}),
    ("etcdserverpb.AlarmResponse", {"alarms": [{"memberID": "5", "alarm": "NOSPACE"}]}),
    ("etcdserverpb.AuthRoleGrantPermissionRequest", {"name": "r",
                                                     "perm": {"permType": "READWRITE", "key": "YQ==",
                                                              "range_end": "Yg=="}}),
    ("etcdserverpb.SnapshotResponse", {"remaining_bytes": "10", "blob": "AAEC"}),
]  # fmt: skip

# Messages and fields the clients know that etcd 3.4 lacks (they come from etcd 3.5).
_NEWER_THAN_3_4 = {
    "etcdserverpb.DowngradeRequest", "etcdserverpb.DowngradeResponse", "etcdserverpb.AuthStatusRequest",
    "etcdserverpb.AuthStatusResponse", "etcdserverpb.MemberListRequest.linearizable",
    "etcdserverpb.AuthUserAddRequest.hashedPassword",
    "etcdserverpb.AuthUserChangePasswordRequest.hashedPassword",
}  # fmt: skip

_LENGTH_DELIMITED = {descriptor.FieldDescriptor.TYPE_STRING, descriptor.FieldDescriptor.TYPE_BYTES}

_OUR_MODULES = (rpc_pb2, kv_pb2, auth_pb2)


def _our_class(full_name):
    package, name = full_name.split(".", 1)
    module = {"etcdserverpb": rpc_pb2, "mvccpb": kv_pb2, "authpb": auth_pb2}[package]
    return getattr(module, name)


def _our_fields():
    fields = {}

    def walk(message):
        fields[message.full_name] = {f.name: [f.number, f.type] for f in message.fields}
        for nested in message.nested_types:
            walk(nested)

    for module in _OUR_MODULES:
        for message in module.DESCRIPTOR.message_types_by_name.values():
            walk(message)
    return fields


def _wire_type(field_type):
    # string and bytes share a wire type: etcd 3.3 declared some keys as string, 3.4 as bytes.
    return "len" if field_type in _LENGTH_DELIMITED else field_type


@pytest.mark.parametrize("package", ["etcd3.etcdrpc", "aetcd.rpc"])
def test_real_clients_protos_agree_on_the_wire(package):
    # Only look for it: importing it here would clash with our protos in the default pool.
    if importlib.util.find_spec(package.split(".")[0]) is None:
        pytest.skip(f"{package} is not installed")
    env = dict(os.environ)
    # etcd3 0.12 ships old generated code that only the pure-Python protobuf runtime still accepts.
    env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, package],
        input=json.dumps(SAMPLES),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    theirs = json.loads(child.stdout)

    ours = _our_fields()
    for message, fields in theirs["fields"].items():
        if message in _NEWER_THAN_3_4:
            continue
        assert message in ours, f"{package} knows {message}, we do not"
        for name, (number, field_type) in fields.items():
            if f"{message}.{name}" in _NEWER_THAN_3_4:
                continue
            assert name in ours[message], f"{message}.{name} missing"
            our_number, our_type = ours[message][name]
            assert (our_number, _wire_type(our_type)) == (number, _wire_type(field_type)), f"{message}.{name}"

    for (name, body), hex_bytes in zip(SAMPLES, theirs["encoded"], strict=True):
        decoded = _our_class(name).FromString(bytes.fromhex(hex_bytes))
        assert decoded == json_format.ParseDict(body, _our_class(name)()), name
        assert decoded.SerializeToString() == bytes.fromhex(hex_bytes), name


def test_internal_raft_request_round_trip():
    request = raft_internal_pb2.InternalRaftRequest(
        header=raft_internal_pb2.RequestHeader(ID=42, username="root", auth_revision=3),
        txn=rpc_pb2.TxnRequest(
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a", value=b"b"))],
        ),
        v2=etcdserver_pb2.Request(Method="PUT", Path="/1/a", Val="b", PrevExist=False),
    )
    decoded = raft_internal_pb2.InternalRaftRequest.FromString(request.SerializeToString())
    assert decoded == request
    # proto2 keeps "unset" apart from false: the v2 store treats a missing prevExist differently.
    assert decoded.v2.HasField("PrevExist") and not decoded.v2.HasField("Refresh")

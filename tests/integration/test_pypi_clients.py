"""PyPI's etcd v3 clients — ``etcd3`` 0.12 (gRPC, threads), ``aetcd`` 1.0 (gRPC, asyncio) and ``etcd3gw``
2.7 (the JSON gateway) — accept `flotilla etcd` as they accept etcd 3.4.

Each client runs one scenario script (clients/<client>_scenario.py; the scenario, step by step with its
revisions, is in clients/common.py): KV (put, get, get prefix, sorted, delete, prev kv), transactions (both
branches, compares on value, version and create revision), watches (from a past revision, live, and from
a compacted revision) and leases (grant, put with a lease, time-to-live, keep-alive, revoke deleting the
key, expiry deleting the key). Every script runs against real etcd AND `flotilla etcd`, and both runs must
print exactly EXPECTED: the real server proves the script and the expectation, the same expectation
then holds Flotilla to it.

The clients run in subprocesses: etcd3 and aetcd register the same protobuf names as flotilla.etcd.api, and
etcd3 needs the pure-Python protobuf runtime.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from processes import real_etcd_available, start_member

CLIENTS_DIR = Path(__file__).parent / "clients"
SCRIPT_TIMEOUT_S = 60
NEEDS_ETCD = pytest.mark.skipif(not real_etcd_available(), reason="needs Debian's etcd-server")
KINDS = ["flotilla", pytest.param("etcd", marks=NEEDS_ETCD)]


def _kv(key: str, value: str, create: int, mod: int, version: int, leased: bool = False) -> dict:
    return {"key": key, "value": value, "create": create, "mod": mod, "version": version, "leased": leased}


def _event(kind: str, key: str, value: str, mod: int) -> dict:
    return {"type": kind, "key": key, "value": value, "mod": mod}


# Revisions are relative to the scenario's first put; see clients/common.py for the steps.
A_1B = _kv("a", "1b", 0, 3, 2)
C_3 = _kv("c", "3", 2, 2, 1)
EXPECTED = {
    "get_a": A_1B,
    "get_missing": None,
    "prefix": [A_1B, _kv("b", "2", 1, 1, 1), C_3],
    "delete_b": True,
    "delete_b_again": False,
    "prefix_after_delete": ["a", "c"],
    "txn_success": {"succeeded": True, "get": [A_1B]},
    "txn_failure": {"succeeded": False, "get": [C_3]},
    "get_t": _kv("t", "fail", 5, 6, 2),
    "txn_create": True,
    "txn_create_again": False,
    "history": [
        _event("PUT", "a", "1", 0),
        _event("PUT", "b", "2", 1),
        _event("PUT", "c", "3", 2),
        _event("PUT", "a", "1b", 3),
        _event("DELETE", "b", "", 4),
        _event("PUT", "t", "yes", 5),
        _event("PUT", "t", "fail", 6),
        _event("PUT", "new", "1", 7),
    ],
    "live": [_event("PUT", "w", "1", 8), _event("DELETE", "w", "", 9)],
    "lease": {
        "granted": 30,
        "key_lease_is_lease": True,
        "ttl_in_range": True,
        "granted_ttl": 30,
        "keys": ["l"],
        "keepalive": [{"same_id": True, "ttl": 30}],
        "get_after_revoke": None,
        "ttl_after_revoke": -1,
    },
    "put_prev_kv": A_1B,
    "delete_prev_kv": [C_3],
    "sorted_desc": ["t", "new", "a"],
    "watch_compacted": 3,
    "end": _kv("z", "end", 14, 14, 1),
    "expired_key": None,
    "expired_ttl": -1,
}

# etcd3gw returns no previous kvs and drops the watch message that reports a compaction; it shows the
# gateway's error for a read at a compacted revision instead (400, grpc code 11 OutOfRange).
ETCD3GW_EXPECTED = {
    **{k: v for k, v in EXPECTED.items() if k not in ("put_prev_kv", "delete_prev_kv", "watch_compacted")},
    "api_path": "/v3/",
    "get_compacted": {
        "error": "Etcd3Exception",
        "reason": ["Bad Request"],
        "body": {
            "code": 11,
            "error": "etcdserver: mvcc: required revision has been compacted",
            "message": "etcdserver: mvcc: required revision has been compacted",
        },
    },
}


def _expected(client: str) -> dict:
    return {"client": client, **(ETCD3GW_EXPECTED if client == "etcd3gw" else EXPECTED)}


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """One member of each kind for the whole module, started on first use; each script run uses a fresh
    key prefix and relative revisions, so runs do not disturb each other."""
    base = tmp_path_factory.mktemp("pypi")
    started = {}

    def get(kind: str):
        if kind not in started:
            started[kind] = start_member(kind, base)
        return started[kind]

    try:
        yield get
    finally:
        for member in started.values():
            member.stop()


def run_scenario(client: str, member) -> dict:
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    script = CLIENTS_DIR / f"{client}_scenario.py"
    done = subprocess.run(
        [sys.executable, str(script), "127.0.0.1", str(member.client_port)],
        capture_output=True, text=True, env=env, timeout=SCRIPT_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, f"{client} against {member.kind} failed:\n{done.stderr}"
    return json.loads(done.stdout)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("client", ["etcd3", "aetcd", "etcd3gw"])
def test_client_scenario(client, kind, members):
    result = run_scenario(client, members(kind))
    expected = _expected(client)
    # Step by step first, so a failure names the step rather than a whole-dict diff.
    for step, value in expected.items():
        assert result.get(step) == value, f"{client} on {kind}: step {step!r}"
    assert result == expected

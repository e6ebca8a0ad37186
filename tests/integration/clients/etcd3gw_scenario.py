"""The client scenario (see common.py) with PyPI's ``etcd3gw`` 2.7 (the v3 JSON gateway over HTTP, found
through /version): ``etcd3gw_scenario.py HOST PORT`` prints one JSON object.

The gateway speaks JSON as grpc-gateway does: int64 fields are strings, bytes are base64, and fields with
their zero value are left out — etcd3gw relies on that (a delete reports success by the presence of
``deleted``, a failed txn has no ``succeeded``)."""

from __future__ import annotations

import base64
import json
import queue
import time

import etcd3gw
from common import (
    EXPIRING_TTL_S,
    EXPIRY_WAIT_S,
    LEASE_TTL_S,
    WATCH_TIMEOUT_S,
    Normalizer,
    emit,
    parse_args,
    ttl_in_range,
)
from etcd3gw.watch import Watcher


def _b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def _unb64(data: str) -> str:
    return base64.b64decode(data).decode()


def _kv(n: Normalizer, value, meta: dict) -> dict:
    """``meta`` is a gateway KeyValue (key already decoded by etcd3gw); absent fields are zero."""
    return n.kv(
        meta["key"],
        value,
        meta.get("create_revision", 0),
        meta.get("mod_revision", 0),
        meta.get("version", 0),
        meta.get("lease", 0),
    )


def _raw_kv(n: Normalizer, kv: dict) -> dict:
    """A KeyValue straight from a txn response: key and value still base64."""
    return _kv(n, _unb64(kv.get("value", "")), {**kv, "key": _unb64(kv["key"])})


def _get(client, n: Normalizer, name: str) -> dict | None:
    found = client.get(n.prefix + name, metadata=True)
    assert len(found) <= 1, found
    return _kv(n, *found[0]) if found else None


def _kv_steps(client, n: Normalizer) -> dict:
    p = n.prefix
    client.put(p + "a", "1")
    # etcd3gw's put returns True, not the header: the base revision is the new key's mod revision.
    n.base = int(client.get(p + "a", metadata=True)[0][1]["mod_revision"])
    client.put(p + "b", "2")
    client.put(p + "c", "3")
    client.put(p + "a", "1b")
    out = {"get_a": _get(client, n, "a"), "get_missing": _get(client, n, "missing")}
    out["prefix"] = [_kv(n, v, m) for v, m in client.get_prefix(p)]
    out["delete_b"] = client.delete(p + "b")
    out["delete_b_again"] = client.delete(p + "b")
    out["prefix_after_delete"] = [n.key(m["key"]) for _, m in client.get_prefix(p)]
    return out


def _txn(client, n: Normalizer, compare: list, success: list, failure: list) -> dict:
    result = client.transaction({"compare": compare, "success": success, "failure": failure})
    ranges = [r["response_range"] for r in result.get("responses", []) if "response_range" in r]
    return {
        "succeeded": result.get("succeeded", False),
        "get": [_raw_kv(n, kv) for r in ranges for kv in r.get("kvs", [])],
    }


def _put_op(key: str, value: str) -> dict:
    return {"request_put": {"key": _b64(key), "value": _b64(value)}}


def _txn_steps(client, n: Normalizer) -> dict:
    p = n.prefix
    a = _b64(p + "a")
    out = {
        "txn_success": _txn(
            client,
            n,
            [
                {"key": a, "result": "EQUAL", "target": "VALUE", "value": _b64("1b")},
                {"key": a, "result": "GREATER", "target": "VERSION", "version": 0},
            ],
            [_put_op(p + "t", "yes"), {"request_range": {"key": a}}],
            [_put_op(p + "t", "no")],
        ),
        "txn_failure": _txn(
            client,
            n,
            [{"key": a, "result": "EQUAL", "target": "VALUE", "value": _b64("nope")}],
            [_put_op(p + "t", "wrong")],
            [_put_op(p + "t", "fail"), {"request_range": {"key": _b64(p + "c")}}],
        ),
    }
    out["get_t"] = _get(client, n, "t")
    out["txn_create"] = client.create(p + "new", "1")
    out["txn_create_again"] = client.create(p + "new", "2")
    return out


def _drain(received: queue.Queue, count: int, n: Normalizer) -> list[dict]:
    events = []
    while len(events) < count:
        event = received.get(timeout=WATCH_TIMEOUT_S)
        kv = event["kv"]
        events.append(n.event(event.get("type", "PUT"), kv["key"], kv.get("value"), kv["mod_revision"]))
    return events


def _watch_steps(client, n: Normalizer) -> dict:
    p = n.prefix
    received: queue.Queue = queue.Queue()
    # Watcher is what client.watch*() wrap; used directly for its callback, so a wait can time out.
    history = Watcher(client, p, received.put, start_revision=n.base, range_end=_prefix_end(p))
    out = {"history": _drain(received, 8, n)}
    history.stop()
    received = queue.Queue()
    # The POST returns with the response headers, which the gateway sends with the "created" message.
    live = Watcher(client, p + "w", received.put)
    client.put(p + "w", "1")
    client.delete(p + "w")
    out["live"] = _drain(received, 2, n)
    live.stop()
    return out


def _prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _lease_steps(client, n: Normalizer) -> dict:
    p = n.prefix
    lease = client.lease(LEASE_TTL_S)
    client.put(p + "l", "leased", lease=lease)
    meta = client.get(p + "l", metadata=True)[0][1]
    # etcd3gw keeps neither the granted TTL nor the keep-alive ID; ask the gateway for them.
    info = client.post(client.get_url("/kv/lease/timetolive"), json={"ID": lease.id})
    keepalive_ttl = lease.refresh()
    keepalive = client.post(client.get_url("/lease/keepalive"), json={"ID": lease.id})["result"]
    out = {
        "granted": int(info["grantedTTL"]),
        "key_lease_is_lease": int(meta["lease"]) == lease.id,
        "ttl_in_range": ttl_in_range(lease.ttl()),
        "granted_ttl": int(info["grantedTTL"]),
        "keys": [n.key(k) for k in lease.keys()],
        "keepalive": [{"same_id": int(keepalive["ID"]) == lease.id, "ttl": keepalive_ttl}],
    }
    lease.revoke()
    out["get_after_revoke"] = _get(client, n, "l")
    out["ttl_after_revoke"] = lease.ttl()
    return out


def _extra_steps(client, n: Normalizer) -> dict:
    """etcd3gw returns no previous kvs and cannot see a watch cancelled by compaction (it drops the
    message); it shows the gateway's error for a read at a compacted revision instead."""
    p = n.prefix
    client.put(p + "a", "1c")
    client.delete(p + "c", prev_kv=True)
    out = {"sorted_desc": [n.key(m["key"]) for _, m in client.get_prefix(p, sort_order="descend")]}
    client.post(client.get_url("/kv/compaction"), json={"revision": n.base + 3})
    try:
        client.get(p + "a", revision=n.base + 1)
        raise AssertionError("a read at a compacted revision succeeded")
    except etcd3gw.exceptions.Etcd3Exception as error:
        out["get_compacted"] = {
            "error": type(error).__name__,
            "reason": error.args,
            "body": json.loads(error.detail_text),
        }
    return out


def _expiry_steps(client, n: Normalizer) -> dict:
    lease = client.lease(EXPIRING_TTL_S)
    client.put(n.prefix + "e", "expiring", lease=lease)
    deadline = time.monotonic() + EXPIRY_WAIT_S
    while client.get(n.prefix + "e") and time.monotonic() < deadline:
        time.sleep(0.2)
    return {"expired_key": _get(client, n, "e"), "expired_ttl": lease.ttl()}


def main() -> None:
    host, port, prefix = parse_args()
    client = etcd3gw.client(host=host, port=port, timeout=WATCH_TIMEOUT_S)
    n = Normalizer(prefix)
    results = {"client": "etcd3gw", "api_path": client.api_path}
    results.update(_kv_steps(client, n))
    results.update(_txn_steps(client, n))
    results.update(_watch_steps(client, n))
    results["lease"] = _lease_steps(client, n)
    results.update(_extra_steps(client, n))
    client.put(prefix + "z", "end")
    results["end"] = _get(client, n, "z")
    results.update(_expiry_steps(client, n))
    emit(results)


if __name__ == "__main__":
    main()

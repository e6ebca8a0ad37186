"""The client scenario (see common.py) with PyPI's ``etcd3`` 0.12 (gRPC, threads): ``etcd3_scenario.py HOST
PORT`` prints one JSON object. etcd3's generated code needs the pure-Python protobuf runtime with protobuf
4+, so the variable is set before anything imports protobuf."""

from __future__ import annotations

import os
import queue
import time

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import etcd3  # noqa: E402
from common import (  # noqa: E402
    EXPIRING_TTL_S,
    EXPIRY_WAIT_S,
    LEASE_TTL_S,
    WATCH_TIMEOUT_S,
    Normalizer,
    emit,
    parse_args,
    ttl_in_range,
)


def _kv(n: Normalizer, value, meta) -> dict:
    return n.kv(meta.key, value, meta.create_revision, meta.mod_revision, meta.version, meta.lease_id)


def _get(client, n: Normalizer, name: str) -> dict | None:
    value, meta = client.get(n.prefix + name)
    return None if meta is None else _kv(n, value, meta)


def _kv_steps(client, n: Normalizer) -> dict:
    p = n.prefix
    n.base = client.put(p + "a", "1").header.revision
    client.put(p + "b", "2")
    client.put(p + "c", "3")
    client.put(p + "a", "1b")
    out = {"get_a": _get(client, n, "a"), "get_missing": _get(client, n, "missing")}
    out["prefix"] = [_kv(n, v, m) for v, m in client.get_prefix(p)]
    out["delete_b"] = client.delete(p + "b")
    out["delete_b_again"] = client.delete(p + "b")
    out["prefix_after_delete"] = [n.key(m.key) for _, m in client.get_prefix(p)]
    return out


def _txn_steps(client, n: Normalizer) -> dict:
    p, t = n.prefix, client.transactions
    ok, responses = client.transaction(
        compare=[t.value(p + "a") == "1b", t.version(p + "a") > 0],
        success=[t.put(p + "t", "yes"), t.get(p + "a")],
        failure=[t.put(p + "t", "no")],
    )
    out = {"txn_success": {"succeeded": ok, "get": [_kv(n, v, m) for v, m in responses[1]]}}
    ok, responses = client.transaction(
        compare=[t.value(p + "a") == "nope"],
        success=[t.put(p + "t", "wrong")],
        failure=[t.put(p + "t", "fail"), t.get(p + "c")],
    )
    out["txn_failure"] = {"succeeded": ok, "get": [_kv(n, v, m) for v, m in responses[1]]}
    out["get_t"] = _get(client, n, "t")
    out["txn_create"] = client.put_if_not_exists(p + "new", "1")
    out["txn_create_again"] = client.put_if_not_exists(p + "new", "2")
    return out


def _event(n: Normalizer, event) -> dict:
    kind = "DELETE" if isinstance(event, etcd3.events.DeleteEvent) else "PUT"
    return n.event(kind, event.key, event.value, event.mod_revision)


def _drain(received: queue.Queue, count: int, n: Normalizer) -> list[dict]:
    """The first ``count`` events delivered to a watch callback, or an error after the timeout."""
    events: list[dict] = []
    while len(events) < count:
        response = received.get(timeout=WATCH_TIMEOUT_S)
        assert not isinstance(response, Exception), response
        events.extend(_event(n, e) for e in response.events)
    return events


def _watch_steps(client, n: Normalizer) -> dict:
    p = n.prefix
    received: queue.Queue = queue.Queue()
    watch_id = client.add_watch_prefix_callback(p, received.put, start_revision=n.base)
    out = {"history": _drain(received, 8, n)}
    client.cancel_watch(watch_id)
    received = queue.Queue()
    watch_id = client.add_watch_callback(p + "w", received.put)  # returns once the watch is created
    client.put(p + "w", "1")
    client.delete(p + "w")
    out["live"] = _drain(received, 2, n)
    client.cancel_watch(watch_id)
    return out


def _lease_steps(client, n: Normalizer) -> dict:
    p = n.prefix
    lease = client.lease(LEASE_TTL_S)
    client.put(p + "l", "leased", lease=lease)
    _, meta = client.get(p + "l")
    info = client.get_lease_info(lease.id)
    refreshed = lease.refresh()
    out = {
        "granted": lease.ttl,
        "key_lease_is_lease": meta.lease_id == lease.id,
        "ttl_in_range": ttl_in_range(lease.remaining_ttl),
        "granted_ttl": lease.granted_ttl,
        "keys": [n.key(k) for k in info.keys],
        "keepalive": [{"same_id": r.ID == lease.id, "ttl": r.TTL} for r in refreshed],
    }
    lease.revoke()
    out["get_after_revoke"] = _get(client, n, "l")
    out["ttl_after_revoke"] = client.get_lease_info(lease.id).TTL
    return out


def _extra_steps(client, n: Normalizer) -> dict:
    p = n.prefix
    put = client.put(p + "a", "1c", prev_kv=True)
    deleted = client.delete(p + "c", prev_kv=True, return_response=True)
    out = {
        "put_prev_kv": _kv(n, put.prev_kv.value, _Meta(put.prev_kv)),
        "delete_prev_kv": [_kv(n, kv.value, _Meta(kv)) for kv in deleted.prev_kvs],
        "sorted_desc": [n.key(m.key) for _, m in client.get_prefix(p, sort_order="descend")],
    }
    client.compact(n.base + 3)
    received: queue.Queue = queue.Queue()
    watch_id = client.add_watch_prefix_callback(p, received.put, start_revision=n.base + 1)
    error = received.get(timeout=WATCH_TIMEOUT_S)
    assert isinstance(error, etcd3.exceptions.RevisionCompactedError), error
    out["watch_compacted"] = n.rev(error.compacted_revision)
    client.cancel_watch(watch_id)
    return out


class _Meta:
    """A raw KeyValue in KVMetadata's shape."""

    def __init__(self, kv) -> None:
        self.key, self.create_revision, self.mod_revision = kv.key, kv.create_revision, kv.mod_revision
        self.version, self.lease_id = kv.version, kv.lease


def _expiry_steps(client, n: Normalizer) -> dict:
    lease = client.lease(EXPIRING_TTL_S)
    client.put(n.prefix + "e", "expiring", lease=lease)
    deadline = time.monotonic() + EXPIRY_WAIT_S
    while client.get(n.prefix + "e")[1] is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    return {"expired_key": _get(client, n, "e"), "expired_ttl": lease.remaining_ttl}


def main() -> None:
    host, port, prefix = parse_args()
    client = etcd3.client(host=host, port=port, timeout=WATCH_TIMEOUT_S)
    n = Normalizer(prefix)
    results = {"client": "etcd3"}
    results.update(_kv_steps(client, n))
    results.update(_txn_steps(client, n))
    results.update(_watch_steps(client, n))
    results["lease"] = _lease_steps(client, n)
    results.update(_extra_steps(client, n))
    client.put(prefix + "z", "end")
    results["end"] = _get(client, n, "z")
    results.update(_expiry_steps(client, n))
    emit(results)
    # No client.close(): etcd3 0.12's watch thread would reopen its stream on the closed channel and
    # die noisily; the process exits here anyway.


if __name__ == "__main__":
    main()

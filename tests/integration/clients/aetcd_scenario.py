"""The client scenario (see common.py) with PyPI's ``aetcd`` 1.0 (gRPC on asyncio): ``aetcd_scenario.py HOST
PORT`` prints one JSON object."""

from __future__ import annotations

import asyncio
import time

import aetcd
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


def _kv(n: Normalizer, kv) -> dict:
    return n.kv(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


async def _get(client: aetcd.Client, n: Normalizer, name: str) -> dict | None:
    got = await client.get((n.prefix + name).encode())
    return None if got is None else _kv(n, got)


async def _kv_steps(client: aetcd.Client, n: Normalizer) -> dict:
    p = n.prefix.encode()
    n.base = (await client.put(p + b"a", b"1")).header.revision
    await client.put(p + b"b", b"2")
    await client.put(p + b"c", b"3")
    await client.put(p + b"a", b"1b")
    out = {"get_a": await _get(client, n, "a"), "get_missing": await _get(client, n, "missing")}
    out["prefix"] = [_kv(n, kv) for kv in await client.get_prefix(p)]
    # aetcd returns None when nothing was deleted, a Delete result otherwise.
    out["delete_b"] = (await client.delete(p + b"b")) is not None
    out["delete_b_again"] = (await client.delete(p + b"b")) is not None
    out["prefix_after_delete"] = [n.key(kv.key) for kv in await client.get_prefix(p)]
    return out


async def _txn_steps(client: aetcd.Client, n: Normalizer) -> dict:
    p, t = n.prefix.encode(), client.transactions
    ok, responses = await client.transaction(
        compare=[t.value(p + b"a") == b"1b", t.version(p + b"a") > 0],
        success=[t.put(p + b"t", b"yes"), t.get(p + b"a")],
        failure=[t.put(p + b"t", b"no")],
    )
    out = {"txn_success": {"succeeded": ok, "get": [_kv(n, kv) for _, kv in responses[1]]}}
    ok, responses = await client.transaction(
        compare=[t.value(p + b"a") == b"nope"],
        success=[t.put(p + b"t", b"wrong")],
        failure=[t.put(p + b"t", b"fail"), t.get(p + b"c")],
    )
    out["txn_failure"] = {"succeeded": ok, "get": [_kv(n, kv) for _, kv in responses[1]]}
    out["get_t"] = await _get(client, n, "t")
    for name, value in (("txn_create", b"1"), ("txn_create_again", b"2")):
        ok, _ = await client.transaction(
            compare=[t.create(p + b"new") == 0], success=[t.put(p + b"new", value)], failure=[]
        )
        out[name] = ok
    return out


async def _take(watch, count: int, n: Normalizer) -> list[dict]:
    """The first ``count`` events of a watch, then cancels it; a deadline guards against a silent server."""

    async def take() -> list[dict]:
        events = []
        async for event in watch:
            events.append(n.event(event.kind, event.kv.key, event.kv.value, event.kv.mod_revision))
            if len(events) == count:
                break
        return events

    try:
        return await asyncio.wait_for(take(), WATCH_TIMEOUT_S)
    finally:
        await watch.cancel()


async def _watch_steps(client: aetcd.Client, n: Normalizer) -> dict:
    p = n.prefix.encode()
    out = {"history": await _take(await client.watch_prefix(p, start_revision=n.base), 8, n)}
    live = await client.watch(p + b"w")  # returns once the server confirmed the watch
    await client.put(p + b"w", b"1")
    await client.delete(p + b"w")
    out["live"] = await _take(live, 2, n)
    return out


async def _lease_steps(client: aetcd.Client, n: Normalizer) -> dict:
    p = n.prefix.encode()
    lease = await client.lease(LEASE_TTL_S)
    await client.put(p + b"l", b"leased", lease=lease)
    got = await client.get(p + b"l")
    refreshed = await lease.refresh()
    out = {
        "granted": lease.ttl,
        "key_lease_is_lease": got.lease == lease.id,
        "ttl_in_range": ttl_in_range(await lease.remaining_ttl()),
        "granted_ttl": await lease.granted_ttl(),
        "keys": [n.key(k) for k in await lease.keys()],
        "keepalive": [{"same_id": refreshed.ID == lease.id, "ttl": refreshed.TTL}],
    }
    await lease.revoke()
    out["get_after_revoke"] = await _get(client, n, "l")
    out["ttl_after_revoke"] = (await client.get_lease_info(lease.id)).TTL
    return out


async def _extra_steps(client: aetcd.Client, n: Normalizer) -> dict:
    p = n.prefix.encode()
    put = await client.put(p + b"a", b"1c", prev_kv=True)
    deleted = await client.delete(p + b"c", prev_kv=True)
    out = {
        "put_prev_kv": _kv(n, put.prev_kv),
        "delete_prev_kv": [_kv(n, deleted.prev_kv)],
        "sorted_desc": [n.key(kv.key) for kv in await client.get_prefix(p, sort_order="descend")],
    }
    await client.compact(n.base + 3)
    watch = await client.watch_prefix(p, start_revision=n.base + 1)
    try:
        await _take(watch, 1, n)
        raise AssertionError("a watch from a compacted revision delivered events")
    except aetcd.RevisionCompactedError as error:
        out["watch_compacted"] = n.rev(error.compacted_revision)
    return out


async def _expiry_steps(client: aetcd.Client, n: Normalizer) -> dict:
    key = (n.prefix + "e").encode()
    lease = await client.lease(EXPIRING_TTL_S)
    await client.put(key, b"expiring", lease=lease)
    deadline = time.monotonic() + EXPIRY_WAIT_S
    while await client.get(key) is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return {"expired_key": await _get(client, n, "e"), "expired_ttl": await lease.remaining_ttl()}


async def main() -> None:
    host, port, prefix = parse_args()
    n = Normalizer(prefix)
    async with aetcd.Client(host=host, port=port, timeout=WATCH_TIMEOUT_S) as client:
        results = {"client": "aetcd"}
        results.update(await _kv_steps(client, n))
        results.update(await _txn_steps(client, n))
        results.update(await _watch_steps(client, n))
        results["lease"] = await _lease_steps(client, n)
        results.update(await _extra_steps(client, n))
        await client.put((prefix + "z").encode(), b"end")
        results["end"] = await _get(client, n, "z")
        results.update(await _expiry_steps(client, n))
    emit(results)


if __name__ == "__main__":
    asyncio.run(main())

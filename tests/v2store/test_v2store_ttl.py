"""TTLs, expiry and refresh in the v2 store (etcd 3.4 semantics; times are arguments, never read)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flotilla.v2store import ErrorCode, V2Error, V2Store
from flotilla.v2store.node import format_rfc3339_nano, ttl_seconds

S = 1_000_000_000
NOW = 1_795_000_000 * S


def unix_ns(text: str, nanos: int = 0) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * S + nanos


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (unix_ns("2026-11-22T07:34:05", 67300512), "2026-11-22T07:34:05.067300512Z"),
        (unix_ns("2026-11-22T07:31:14", 859153509), "2026-11-22T07:31:14.859153509Z"),
        (unix_ns("2026-01-02T03:04:05", 500_000_000), "2026-01-02T03:04:05.5Z"),
        (unix_ns("2026-01-02T03:04:05", 120), "2026-01-02T03:04:05.00000012Z"),
        (unix_ns("2000-02-29T23:59:59"), "2000-02-29T23:59:59Z"),
        (0, "1970-01-01T00:00:00Z"),
        (unix_ns("9999-12-31T23:59:59", 1), "9999-12-31T23:59:59.000000001Z"),
    ],
)
def test_expiration_is_go_rfc3339_nano(instant: int, expected: str) -> None:
    assert format_rfc3339_nano(instant) == expected


def test_expiration_matches_the_calendar_for_many_days() -> None:
    for day in range(0, 200_000, 37):
        seconds = day * 86400 + day % 86400
        assert format_rfc3339_nano(seconds * S) == datetime.fromtimestamp(seconds, UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )


@pytest.mark.parametrize(
    ("remaining_ns", "ttl"),
    [
        (5 * S, 5),
        (5 * S - 1, 5),
        (4 * S + 1, 5),
        (1, 1),
        (0, 0),
        (-S // 3, 0),
        (-3 * S // 2, -1),
        (-2 * S, -2),
    ],
)
def test_ttl_is_etcds_ceiling(remaining_ns: int, ttl: int) -> None:
    assert ttl_seconds(NOW + remaining_ns, NOW) == ttl


def test_set_with_ttl_shows_expiration_and_ttl() -> None:
    store = V2Store()
    expire = NOW + 5 * S
    event = store.set("/foo", value="bar", expire_ns=expire, now_ns=NOW)
    assert event.to_json()["node"] == {
        "key": "/foo",
        "value": "bar",
        "expiration": format_rfc3339_nano(expire),
        "ttl": 5,
        "modifiedIndex": 1,
        "createdIndex": 1,
    }
    assert store.get("/foo", now_ns=NOW + 2 * S + 1).node.ttl == 3
    assert store.has_ttl_keys()


def test_ttl_zero_shows_expiration_without_ttl() -> None:
    store = V2Store()
    node = store.set("/z0", value="v", expire_ns=NOW, now_ns=NOW).to_json()["node"]
    assert "ttl" not in node and node["expiration"] == format_rfc3339_nano(NOW)


def test_set_and_create_take_expiry_before_2000_as_permanent() -> None:
    store = V2Store()
    assert store.set("/a", value="v", expire_ns=5, now_ns=NOW).node.expiration_ns is None
    assert store.create("/b", value="v", expire_ns=5, now_ns=NOW).node.expiration_ns is None
    assert not store.has_ttl_keys()
    # update takes it as given: an expiry in the past, gone at the next sweep.
    store.update("/a", value="v", expire_ns=5, now_ns=NOW)
    assert [e.node.key for e in store.delete_expired(NOW)] == ["/a"]


def test_expire_events_in_expiry_order_one_index_each() -> None:
    store = V2Store()
    store.set("/late", value="v", expire_ns=NOW + 3 * S, now_ns=NOW)  # 1
    store.set("/early", value="v", expire_ns=NOW + 1 * S, now_ns=NOW)  # 2
    store.set("/tie", value="v", expire_ns=NOW + 1 * S, now_ns=NOW)  # 3
    store.set("/keep", value="v", expire_ns=NOW + 10 * S, now_ns=NOW)  # 4
    assert store.delete_expired(NOW) == []
    events = store.delete_expired(NOW + 3 * S)
    assert [(e.node.key, e.index(), e.etcd_index) for e in events] == [
        ("/early", 5, 5),
        ("/tie", 6, 6),
        ("/late", 7, 7),
    ]
    assert events[0].to_json() == {
        "action": "expire",
        "node": {"key": "/early", "modifiedIndex": 5, "createdIndex": 2},
        "prevNode": {
            "key": "/early",
            "value": "v",
            "expiration": format_rfc3339_nano(NOW + S),
            "ttl": -2,
            "modifiedIndex": 2,
            "createdIndex": 2,
        },
    }
    assert store.index == 7 and store.stats.expire_count == 3
    assert store.has_ttl_keys()
    with pytest.raises(V2Error) as info:
        store.get("/late", now_ns=NOW)
    assert info.value.code == ErrorCode.KEY_NOT_FOUND


def test_expiring_dir_takes_its_children_in_one_event() -> None:
    store = V2Store()
    store.set("/exp", dir=True, expire_ns=NOW + S, now_ns=NOW)  # 1
    store.set("/exp/c", value="1", expire_ns=NOW + 5 * S, now_ns=NOW)  # 2
    store.set("/exp/d/e", value="1", now_ns=NOW)  # 3
    events = store.delete_expired(NOW + S)
    assert [e.to_json() for e in events] == [
        {
            "action": "expire",
            "node": {"key": "/exp", "dir": True, "modifiedIndex": 4, "createdIndex": 1},
            "prevNode": {
                "key": "/exp",
                "dir": True,
                "expiration": format_rfc3339_nano(NOW + S),
                "modifiedIndex": 1,
                "createdIndex": 1,
            },
        }
    ]
    assert not store.has_ttl_keys()
    assert store.get("/", recursive=True, now_ns=NOW).node.nodes == []


def test_ttl_removed_by_update_without_expiry_and_by_set() -> None:
    store = V2Store()
    store.set("/a", value="v", expire_ns=NOW + S, now_ns=NOW)
    store.update("/a", value="w", now_ns=NOW)
    assert not store.has_ttl_keys()
    store.set("/b", value="v", expire_ns=NOW + S, now_ns=NOW)
    store.set("/b", value="w", now_ns=NOW)
    assert not store.has_ttl_keys()
    store.set("/c", value="v", expire_ns=NOW + S, now_ns=NOW)
    store.delete("/c", now_ns=NOW)
    assert not store.has_ttl_keys()
    assert store.delete_expired(NOW + 10 * S) == []


def test_update_moves_the_expiry() -> None:
    store = V2Store()
    store.set("/a", value="v", expire_ns=NOW + S, now_ns=NOW)
    store.update("/a", value="v", expire_ns=NOW + 10 * S, now_ns=NOW)
    assert store.delete_expired(NOW + 5 * S) == []
    assert [e.node.key for e in store.delete_expired(NOW + 10 * S)] == ["/a"]


def test_refresh_keeps_the_value_and_tells_no_watcher() -> None:
    store = V2Store()
    store.set("/t", value="v", expire_ns=NOW + 5 * S, now_ns=NOW)  # 1
    watcher = store.watch("/t", stream=True)
    updated = store.update("/t", expire_ns=NOW + 50 * S, refresh=True, now_ns=NOW)  # 2
    assert updated.refresh
    assert updated.to_json() == {
        "action": "update",
        "node": {
            "key": "/t",
            "value": "v",
            "expiration": format_rfc3339_nano(NOW + 50 * S),
            "ttl": 50,
            "modifiedIndex": 2,
            "createdIndex": 1,
        },
        "prevNode": {
            "key": "/t",
            "value": "v",
            "expiration": format_rfc3339_nano(NOW + 5 * S),
            "ttl": 5,
            "modifiedIndex": 1,
            "createdIndex": 1,
        },
    }
    # A refresh through set replaces the node: createdIndex resets, as etcd.
    by_set = store.set("/t", expire_ns=NOW + 60 * S, refresh=True, now_ns=NOW)  # 3
    assert (by_set.node.value, by_set.node.created_index, by_set.prev_node.modified_index) == ("v", 3, 2)
    by_cas = store.compare_and_swap("/t", prev_value="v", expire_ns=NOW + 70 * S, refresh=True, now_ns=NOW)
    assert (by_cas.action, by_cas.node.value, by_cas.node.ttl, by_cas.refresh) == (
        "compareAndSwap",
        "v",
        70,
        True,
    )
    assert list(watcher.pending) == []
    # In the history, but a watch from there skips refreshes.
    late = store.watch("/t", since_index=2)
    assert late.pending == type(late.pending)() and not late.removed
    store.set("/t", value="new", now_ns=NOW)  # 5
    assert [e.index() for e in late.pending] == [5]
    assert [e.index() for e in watcher.pending] == [5]


def test_refresh_of_a_missing_key_is_key_not_found() -> None:
    store = V2Store()
    with pytest.raises(V2Error) as info:
        store.set("/nope", expire_ns=NOW + S, refresh=True, now_ns=NOW)
    assert info.value.code == ErrorCode.KEY_NOT_FOUND
    assert store.stats.sets_fail == 1

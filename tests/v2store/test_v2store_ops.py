"""V2Store operations, errors, listings and counters, against etcd 3.4.23's answers.

The JSON literals below were taken from curl against Debian's etcd 3.4.23 with --enable-v2=true. A fresh
etcd 3.4 member has written cluster membership into the same store (indexes 1-3), so each scenario
starts with three ``advance_index()`` calls to get etcd's numbers.
"""

from __future__ import annotations

import pytest

from flotilla.v2store import ErrorCode, V2Error, V2Store

NOW = 1_795_000_000 * 1_000_000_000


def etcd_like() -> V2Store:
    store = V2Store()
    for _ in range(3):
        store.advance_index()
    return store


def error_of(call, *args, **kwargs) -> V2Error:
    with pytest.raises(V2Error) as info:
        call(*args, now_ns=NOW, **kwargs)
    return info.value


def test_set_replaces_and_resets_created_index() -> None:
    store = etcd_like()
    first = store.set("/a", value="1", now_ns=NOW)
    assert first.to_json() == {
        "action": "set",
        "node": {"key": "/a", "value": "1", "modifiedIndex": 4, "createdIndex": 4},
    }
    assert first.is_created and first.etcd_index == 4
    second = store.set("/a", value="2", now_ns=NOW)
    assert second.to_json() == {
        "action": "set",
        "node": {"key": "/a", "value": "2", "modifiedIndex": 5, "createdIndex": 5},
        "prevNode": {"key": "/a", "value": "1", "modifiedIndex": 4, "createdIndex": 4},
    }
    assert not second.is_created
    assert store.index == 5


def test_empty_value_is_shown() -> None:
    store = etcd_like()
    store.set("/a", value="1", now_ns=NOW)
    store.set("/a", value="2", now_ns=NOW)
    assert store.set("/e", value="", now_ns=NOW).to_json()["node"] == {
        "key": "/e",
        "value": "",
        "modifiedIndex": 6,
        "createdIndex": 6,
    }
    assert store.get("/e", now_ns=NOW).to_json() == {
        "action": "get",
        "node": {"key": "/e", "value": "", "modifiedIndex": 6, "createdIndex": 6},
    }


def test_set_dir_over_a_file_and_parents_made_on_the_way() -> None:
    store = etcd_like()
    store.set("/a", value="2", now_ns=NOW)  # 4
    store.set("/e", value="", now_ns=NOW)  # 5
    assert store.set("/a", dir=True, now_ns=NOW).to_json() == {
        "action": "set",
        "node": {"key": "/a", "dir": True, "modifiedIndex": 6, "createdIndex": 6},
        "prevNode": {"key": "/a", "value": "2", "modifiedIndex": 4, "createdIndex": 4},
    }
    store.set("/a/b", value="x", now_ns=NOW)  # 7
    assert store.set("/d/e/f", value="x", now_ns=NOW).to_json()["node"]["modifiedIndex"] == 8
    recursive = store.get("/", recursive=True, sorted=True, now_ns=NOW).to_json()
    assert recursive == {
        "action": "get",
        "node": {
            "dir": True,
            "nodes": [
                {
                    "key": "/a",
                    "dir": True,
                    "nodes": [{"key": "/a/b", "value": "x", "modifiedIndex": 7, "createdIndex": 7}],
                    "modifiedIndex": 6,
                    "createdIndex": 6,
                },
                {
                    "key": "/d",
                    "dir": True,
                    "nodes": [
                        {
                            "key": "/d/e",
                            "dir": True,
                            "nodes": [{"key": "/d/e/f", "value": "x", "modifiedIndex": 8, "createdIndex": 8}],
                            "modifiedIndex": 8,
                            "createdIndex": 8,
                        }
                    ],
                    "modifiedIndex": 8,
                    "createdIndex": 8,
                },
                {"key": "/e", "value": "", "modifiedIndex": 5, "createdIndex": 5},
            ],
        },
    }
    flat = store.get("/", sorted=True, now_ns=NOW).to_json()["node"]["nodes"]
    assert flat == [
        {"key": "/a", "dir": True, "modifiedIndex": 6, "createdIndex": 6},
        {"key": "/d", "dir": True, "modifiedIndex": 8, "createdIndex": 8},
        {"key": "/e", "value": "", "modifiedIndex": 5, "createdIndex": 5},
    ]


def test_empty_root_and_empty_dir() -> None:
    store = V2Store()
    assert store.get("/", now_ns=NOW).to_json() == {"action": "get", "node": {"dir": True}}
    store.set("/d", dir=True, now_ns=NOW)
    assert store.get("/d", recursive=True, now_ns=NOW).to_json()["node"] == {
        "key": "/d",
        "dir": True,
        "modifiedIndex": 1,
        "createdIndex": 1,
    }


def test_unsorted_listing_keeps_every_child() -> None:
    store = V2Store()
    for name in ("c", "a", "b"):
        store.set(f"/x/{name}", value=name, now_ns=NOW)
    keys = [n["key"] for n in store.get("/x", now_ns=NOW).to_json()["node"]["nodes"]]
    assert sorted(keys) == ["/x/a", "/x/b", "/x/c"]
    keys = [n["key"] for n in store.get("/x", sorted=True, now_ns=NOW).to_json()["node"]["nodes"]]
    assert keys == ["/x/a", "/x/b", "/x/c"]


def test_paths_are_cleaned() -> None:
    store = V2Store()
    store.set("//a//b/../c/", value="v", now_ns=NOW)
    assert store.get("/a/c", now_ns=NOW).node.value == "v"
    assert store.get("a/./c", now_ns=NOW).node.key == "/a/c"


def test_update_of_a_dir_takes_only_a_ttl_and_keeps_its_modified_index() -> None:
    store = etcd_like()
    store.set("/d/e/f", value="x", now_ns=NOW)  # 4
    err = error_of(store.update, "/d", value="v")
    assert (err.code, err.cause, err.index, err.status) == (ErrorCode.NOT_FILE, "/d", 4, 403)
    expire = NOW + 100 * 1_000_000_000
    with_ttl = store.update("/d", expire_ns=expire, now_ns=NOW).to_json()
    assert with_ttl["node"] == {
        "key": "/d",
        "dir": True,
        "expiration": "2026-11-18T11:08:20Z",
        "ttl": 100,
        "modifiedIndex": 5,
        "createdIndex": 4,
    }
    without = store.update("/d", now_ns=NOW).to_json()
    assert without == {
        "action": "update",
        "node": {"key": "/d", "dir": True, "modifiedIndex": 6, "createdIndex": 4},
        "prevNode": {
            "key": "/d",
            "dir": True,
            "expiration": "2026-11-18T11:08:20Z",
            "ttl": 100,
            "modifiedIndex": 4,
            "createdIndex": 4,
        },
    }
    assert not store.has_ttl_keys()


def test_update_file_keeps_created_index() -> None:
    store = V2Store()
    store.set("/k", value="a", now_ns=NOW)
    event = store.update("/k", value="b", now_ns=NOW)
    assert event.to_json() == {
        "action": "update",
        "node": {"key": "/k", "value": "b", "modifiedIndex": 2, "createdIndex": 1},
        "prevNode": {"key": "/k", "value": "a", "modifiedIndex": 1, "createdIndex": 1},
    }
    err = error_of(store.update, "/missing", value="x")
    assert (err.code, err.cause, err.index, err.status) == (ErrorCode.KEY_NOT_FOUND, "/missing", 2, 404)


def test_root_is_read_only() -> None:
    store = V2Store()
    store.set("/x", value="1", now_ns=NOW)
    for call, kwargs in (
        (store.set, {"value": "v"}),
        (store.create, {"value": "v"}),
        (store.update, {"value": "v"}),
        (store.delete, {"recursive": True}),
        (store.compare_and_swap, {"prev_value": "x", "value": "v"}),
    ):
        err = error_of(call, "/", **kwargs)
        assert err.to_json() == {"errorCode": 107, "message": "Root is read only", "cause": "/", "index": 1}
        assert err.status == 400
    # compareAndDelete has no root check in etcd: the root is a directory, shown without a cause.
    assert error_of(store.compare_and_delete, "/", prev_value="x").to_json() == {
        "errorCode": 102,
        "message": "Not a file",
        "index": 1,
    }


def test_compare_and_swap_causes() -> None:
    store = etcd_like()
    for _ in range(8):
        store.advance_index()
    store.set("/k", value="one", now_ns=NOW)  # 12, as in the etcd session
    both = error_of(store.compare_and_swap, "/k", prev_value="two", prev_index=3, value="9")
    assert both.to_json() == {
        "errorCode": 101,
        "message": "Compare failed",
        "cause": "[two != one] [3 != 12]",
        "index": 12,
    }
    assert both.status == 412
    assert error_of(store.compare_and_swap, "/k", prev_value="two", value="9").cause == "[two != one]"
    assert error_of(store.compare_and_swap, "/k", prev_index=3, value="9").cause == "[3 != 12]"
    cad = error_of(store.compare_and_delete, "/k", prev_value="two", prev_index=3)
    assert cad.cause == "[two != one] [3 != 12]"
    event = store.compare_and_swap("/k", prev_value="one", prev_index=12, value="9", now_ns=NOW)
    assert event.to_json() == {
        "action": "compareAndSwap",
        "node": {"key": "/k", "value": "9", "modifiedIndex": 13, "createdIndex": 12},
        "prevNode": {"key": "/k", "value": "one", "modifiedIndex": 12, "createdIndex": 12},
    }


def test_compare_and_swap_and_delete_need_a_file() -> None:
    store = V2Store()
    store.set("/a/b", value="x", now_ns=NOW)
    err = error_of(store.compare_and_swap, "/a", prev_value="1", value="9")
    assert (err.code, err.cause, err.index) == (ErrorCode.NOT_FILE, "/a", 1)
    err = error_of(store.compare_and_delete, "/a", prev_index=5)
    assert (err.code, err.cause) == (ErrorCode.NOT_FILE, "/a")
    err = error_of(store.compare_and_swap, "/nope", prev_value="1", value="9")
    assert (err.code, err.cause) == (ErrorCode.KEY_NOT_FOUND, "/nope")


def test_compare_and_delete() -> None:
    store = V2Store()
    store.set("/k", value="v", now_ns=NOW)
    event = store.compare_and_delete("/k", prev_value="v", now_ns=NOW)
    assert event.to_json() == {
        "action": "compareAndDelete",
        "node": {"key": "/k", "modifiedIndex": 2, "createdIndex": 1},
        "prevNode": {"key": "/k", "value": "v", "modifiedIndex": 1, "createdIndex": 1},
    }
    assert error_of(store.get, "/k").code == ErrorCode.KEY_NOT_FOUND


def test_create_and_not_a_directory() -> None:
    store = etcd_like()
    store.set("/k", value="one", now_ns=NOW)  # 4
    err = error_of(store.create, "/k", value="9")
    assert err.to_json() == {"errorCode": 105, "message": "Key already exists", "cause": "/k", "index": 4}
    assert err.status == 412
    for call in (store.set, store.create):
        err = error_of(call, "/k/x", value="9")
        assert err.to_json() == {"errorCode": 104, "message": "Not a directory", "cause": "/k", "index": 4}
    err = error_of(store.get, "/k/x/y")
    assert (err.code, err.cause) == (ErrorCode.NOT_DIR, "/k")
    err = error_of(store.get, "/nope/x/y")
    assert err.to_json() == {"errorCode": 100, "message": "Key not found", "cause": "/nope", "index": 4}
    created = store.create("/x", value="1", now_ns=NOW)
    assert created.to_json()["action"] == "create" and created.is_created


def test_set_on_a_directory_is_not_a_file() -> None:
    store = V2Store()
    store.set("/d/e", value="x", now_ns=NOW)
    assert error_of(store.set, "/d", value="9").cause == "/d"
    assert error_of(store.set, "/d", dir=True).code == ErrorCode.NOT_FILE


def test_delete_rules() -> None:
    store = V2Store()
    store.set("/d/e", value="x", now_ns=NOW)  # 1
    err = error_of(store.delete, "/d")
    assert (err.code, err.cause, err.status) == (ErrorCode.NOT_FILE, "/d", 403)
    err = error_of(store.delete, "/d", dir=True)
    assert err.to_json() == {"errorCode": 108, "message": "Directory not empty", "cause": "/d", "index": 1}
    assert err.status == 403
    deleted = store.delete("/d", recursive=True, now_ns=NOW)
    assert deleted.to_json() == {
        "action": "delete",
        "node": {"key": "/d", "dir": True, "modifiedIndex": 2, "createdIndex": 1},
        "prevNode": {"key": "/d", "dir": True, "modifiedIndex": 1, "createdIndex": 1},
    }
    store.set("/empty", dir=True, now_ns=NOW)
    assert store.delete("/empty", dir=True, now_ns=NOW).node.dir
    store.set("/f", value="v", now_ns=NOW)
    assert store.delete("/f", dir=True, now_ns=NOW).to_json()["node"] == {
        "key": "/f",
        "modifiedIndex": 6,
        "createdIndex": 5,
    }
    assert error_of(store.delete, "/f").code == ErrorCode.KEY_NOT_FOUND


def test_in_order_keys() -> None:
    store = etcd_like()
    for _ in range(9):
        store.advance_index()
    first = store.create("/q", value="j1", unique=True, now_ns=NOW)
    assert first.to_json() == {
        "action": "create",
        "node": {"key": "/q/00000000000000000013", "value": "j1", "modifiedIndex": 13, "createdIndex": 13},
    }
    second = store.create("/q", value="j2", unique=True, now_ns=NOW)
    assert second.node.key == "/q/00000000000000000014"
    dir_child = store.create("/q", dir=True, unique=True, now_ns=NOW)
    assert dir_child.to_json()["node"] == {
        "key": "/q/00000000000000000015",
        "dir": True,
        "modifiedIndex": 15,
        "createdIndex": 15,
    }


def test_hidden_keys_are_left_out_of_listings_only() -> None:
    store = V2Store()
    store.set("/q/a", value="1", now_ns=NOW)
    store.set("/q/_h", value="hidden", now_ns=NOW)
    store.set("/q/_hd/x", value="1", now_ns=NOW)
    store.set("/q/d/_deep", value="1", now_ns=NOW)
    listing = store.get("/q", recursive=True, sorted=True, now_ns=NOW).to_json()["node"]["nodes"]
    assert listing == [
        {"key": "/q/a", "value": "1", "modifiedIndex": 1, "createdIndex": 1},
        {"key": "/q/d", "dir": True, "modifiedIndex": 4, "createdIndex": 4},
    ]
    assert store.get("/q/_h", now_ns=NOW).node.value == "hidden"
    assert [n.key for n in store.get("/q/_hd", now_ns=NOW).node.nodes] == ["/q/_hd/x"]


def test_error_json_and_statuses() -> None:
    assert V2Error(ErrorCode.KEY_NOT_FOUND, "", 3).to_json() == {
        "errorCode": 100,
        "message": "Key not found",
        "index": 3,
    }
    statuses = {code: V2Error(code).status for code in ErrorCode}
    assert statuses[ErrorCode.UNAUTHORIZED] == 401
    assert statuses[ErrorCode.RAFT_INTERNAL] == statuses[ErrorCode.LEADER_ELECT] == 500
    assert statuses[ErrorCode.TTL_NAN] == statuses[ErrorCode.EVENT_INDEX_CLEARED] == 400
    assert V2Error(ErrorCode.WATCHER_CLEARED).message == "watcher is cleared due to etcd recovery"
    assert str(V2Error(ErrorCode.NOT_DIR, "/k")) == "Not a directory (/k)"


def test_stats_counters_as_etcd_counts_them() -> None:
    store = V2Store()
    store.set("/a/b", value="x", now_ns=NOW)
    store.set("/k", value="v", now_ns=NOW)
    store.get("/k", now_ns=NOW)
    error_of(store.get, "/nope")
    error_of(store.set, "/k/x", value="1")  # 104: one setsFail
    error_of(store.set, "/a", value="1")
    store.create("/c", value="1", now_ns=NOW)
    error_of(store.create, "/c", value="1")
    error_of(store.create, "/k/y", value="1")  # 104 in create: a createFail and a setsFail
    store.update("/k", value="w", now_ns=NOW)
    error_of(store.update, "/nope", value="1")
    # etcd 3.4 counts these failures as successes (its early returns skip the error it counts).
    error_of(store.update, "/", value="1")
    error_of(store.update, "/a", value="1")
    error_of(store.delete, "/")
    error_of(store.compare_and_swap, "/", prev_value="x", value="1")
    error_of(store.compare_and_delete, "/a", prev_value="x")
    error_of(store.compare_and_delete, "/k", prev_value="nope")
    # ...and these as failures.
    error_of(store.compare_and_swap, "/a", prev_value="x", value="1")
    error_of(store.compare_and_swap, "/k", prev_value="nope", value="1")
    error_of(store.compare_and_delete, "/nope", prev_value="x")
    error_of(store.delete, "/a")
    store.delete("/c", now_ns=NOW)
    store.set("/t", value="v", expire_ns=NOW + 1, now_ns=NOW)
    store.delete_expired(NOW + 1)
    watcher = store.watch("/k")
    assert store.stats.to_json(store.watcher_count) == {
        "getsSuccess": 1,
        "getsFail": 1,
        "setsSuccess": 3,
        "setsFail": 3,
        "deleteSuccess": 2,
        "deleteFail": 1,
        "updateSuccess": 3,
        "updateFail": 1,
        "createSuccess": 1,
        "createFail": 2,
        "compareAndSwapSuccess": 1,
        "compareAndSwapFail": 2,
        "compareAndDeleteSuccess": 2,
        "compareAndDeleteFail": 1,
        "expireCount": 1,
        "watchers": 1,
    }
    store.unwatch(watcher)
    assert store.watcher_count == 0

"""Watchers, the event history and snapshots of the v2 store.

Each watcher case was checked against etcd 3.4.23 with curl (stream watches with -N), including its
quirks: a stream watch on a deleted key or directory hears the deletion twice, and a stream watch that
starts from the history gets that one event only.
"""

from __future__ import annotations

import json

import pytest

from flotilla.v2store import ErrorCode, V2Error, V2Store, Watcher

S = 1_000_000_000
NOW = 1_795_000_000 * S


def keys(watcher: Watcher) -> list[tuple[str, str, int]]:
    return [(e.action, e.node.key, e.index()) for e in watcher.pending]


def test_one_shot_watch_gets_the_next_event_and_leaves() -> None:
    store = V2Store()
    calls = []
    watcher = store.watch("/k")
    watcher.on_event = lambda: calls.append(len(watcher.pending))
    assert (watcher.since_index, watcher.start_index, store.watcher_count) == (1, 0, 1)
    store.set("/other", value="x", now_ns=NOW)
    store.set("/k", value="1", now_ns=NOW)
    store.set("/k", value="2", now_ns=NOW)
    assert keys(watcher) == [("set", "/k", 2)] and watcher.removed
    assert calls == [1] and store.watcher_count == 0
    assert watcher.pending[0].etcd_index == 2


def test_recursive_and_prefix_matching() -> None:
    store = V2Store()
    plain = store.watch("/a", stream=True)
    deep = store.watch("/a", recursive=True, stream=True)
    root = store.watch("/", recursive=True, stream=True)
    store.set("/a/b", value="1", now_ns=NOW)  # 1
    store.set("/ab", value="1", now_ns=NOW)  # 2
    with pytest.raises(V2Error):
        store.set("/a/b/c", value="1", now_ns=NOW)  # 104: no event, no index
    store.delete("/a/b", now_ns=NOW)  # 3
    assert keys(plain) == []
    assert keys(deep) == [("set", "/a/b", 1), ("delete", "/a/b", 3)]
    assert keys(root) == [("set", "/a/b", 1), ("set", "/ab", 2), ("delete", "/a/b", 3)]
    assert store.watcher_count == 3


def test_stream_watch_on_a_deleted_key_hears_it_twice() -> None:
    store = V2Store()
    stream = store.watch("/w", stream=True)
    once = store.watch("/w")
    store.set("/w", value="1", now_ns=NOW)
    once = store.watch("/w")
    store.delete("/w", now_ns=NOW)
    assert keys(stream) == [("set", "/w", 1), ("delete", "/w", 2), ("delete", "/w", 2)]
    assert keys(once) == [("delete", "/w", 2)]


def test_deleting_a_dir_tells_the_watchers_below_it() -> None:
    store = V2Store()
    store.set("/wd/x", value="0", now_ns=NOW)  # 1
    child = store.watch("/wd/x", stream=True)
    child_once = store.watch("/wd/x")
    dir_stream = store.watch("/wd", stream=True)
    store.set("/wd/x", value="1", now_ns=NOW)  # 2
    child_once_2 = store.watch("/wd/x")
    store.delete("/wd", recursive=True, now_ns=NOW)  # 3
    assert keys(child) == [("set", "/wd/x", 2), ("delete", "/wd", 3)]
    assert keys(child_once) == [("set", "/wd/x", 2)]
    assert keys(child_once_2) == [("delete", "/wd", 3)]
    assert keys(dir_stream) == [("delete", "/wd", 3), ("delete", "/wd", 3)]


def test_expiring_dir_tells_the_watchers_below_it() -> None:
    store = V2Store()
    store.set("/exp", dir=True, expire_ns=NOW + S, now_ns=NOW)  # 1
    store.set("/exp/c", value="1", now_ns=NOW)  # 2
    child = store.watch("/exp/c", stream=True)
    store.delete_expired(NOW + S)
    assert keys(child) == [("expire", "/exp", 3)]


def test_hidden_keys_are_not_seen_by_recursive_watchers() -> None:
    store = V2Store()
    root = store.watch("/", recursive=True, stream=True)
    direct = store.watch("/_hid", stream=True)
    inside = store.watch("/_h", recursive=True, stream=True)
    store.set("/_hid", value="1", now_ns=NOW)  # 1
    store.set("/a/_h/x", value="1", now_ns=NOW)  # 2
    store.set("/_h/x", value="1", now_ns=NOW)  # 3
    store.set("/a/b", value="1", now_ns=NOW)  # 4
    assert keys(root) == [("set", "/a/b", 4)]
    assert keys(direct) == [("set", "/_hid", 1)]
    assert keys(inside) == [("set", "/_h/x", 3)]
    # The history does not filter hidden keys (etcd's scan), so a watch from an index sees them.
    replay = store.watch("/", recursive=True, since_index=1)
    assert keys(replay) == [("set", "/_hid", 1)]


def test_watch_from_the_history() -> None:
    store = V2Store()
    for i in range(1, 6):
        store.set(f"/q/{i}", value=str(i), now_ns=NOW)
    watcher = store.watch("/q", recursive=True, stream=True, since_index=3)
    assert keys(watcher) == [("set", "/q/3", 3)]
    assert watcher.pending[0].etcd_index == 5 and watcher.start_index == 5
    # Not registered: etcd's stream from the history ends after that event.
    assert watcher.removed and store.watcher_count == 0
    store.set("/q/9", value="9", now_ns=NOW)
    assert len(watcher.pending) == 1
    # The stored event keeps its own index.
    assert store.watch("/q/3", since_index=1).pending[0].etcd_index == 6
    ahead = store.watch("/q", recursive=True, since_index=9)
    store.set("/q/10", value="x", now_ns=NOW)  # 7: before since_index
    store.set("/q/11", value="x", now_ns=NOW)  # 8
    store.set("/q/12", value="x", now_ns=NOW)  # 9
    assert keys(ahead) == [("set", "/q/12", 9)]


def test_history_matches_deleted_dirs_by_plain_prefix() -> None:
    store = V2Store()
    store.set("/a/b/c", value="1", now_ns=NOW)  # 1
    store.set("/ab", value="1", now_ns=NOW)  # 2
    store.delete("/a", recursive=True, now_ns=NOW)  # 3
    assert keys(store.watch("/a/b/c", since_index=2)) == [("delete", "/a", 3)]
    # etcd compares the watched key with the directory's key as strings: /ab matches /a's deletion.
    assert keys(store.watch("/abc", since_index=3)) == [("delete", "/a", 3)]


def test_cleared_history_is_401() -> None:
    store = V2Store(history_size=4)
    for i in range(10):
        store.set("/k", value=str(i), now_ns=NOW)
    assert keys(store.watch("/k", since_index=7)) == [("set", "/k", 7)]
    with pytest.raises(V2Error) as info:
        store.watch("/k", since_index=6)
    err = info.value
    assert (err.code, err.index, err.oldest_index, err.status) == (ErrorCode.EVENT_INDEX_CLEARED, 10, 7, 400)
    assert err.to_json() == {
        "errorCode": 401,
        "message": "The event in requested index is outdated and cleared",
        "cause": "the requested history has been cleared [7/6]",
        "index": 10,
        "oldestIndex": 7,
    }


def test_full_stream_watcher_is_dropped() -> None:
    store = V2Store(watcher_buffer=2)
    signals = []
    watcher = store.watch("/k", stream=True)
    watcher.on_event = lambda: signals.append(watcher.removed)
    for i in range(3):
        store.set("/k", value=str(i), now_ns=NOW)
    assert keys(watcher) == [("set", "/k", 1), ("set", "/k", 2)]
    assert signals == [False, False, True] and store.watcher_count == 0


def test_unwatch_and_clear_watchers() -> None:
    store = V2Store()
    gone = store.watch("/a", stream=True)
    store.unwatch(gone)
    store.unwatch(gone)
    assert gone.removed and store.watcher_count == 0
    signals = []
    watchers = [store.watch("/a"), store.watch("/b", recursive=True, stream=True)]
    for watcher in watchers:
        watcher.on_event = lambda w=watcher: signals.append((w.key, w.removed, len(w.pending)))
    store.clear_watchers()
    assert signals == [("/a", True, 0), ("/b", True, 0)] and store.watcher_count == 0
    store.set("/a", value="1", now_ns=NOW)
    assert all(not w.pending for w in watchers)


def test_internal_writes_take_indexes_but_match_no_watch() -> None:
    store = V2Store(history_size=3)
    root = store.watch("/", recursive=True, stream=True)
    for _ in range(3):
        store.advance_index()
    assert store.index == 3 and keys(root) == []
    assert store.watch("/", recursive=True, since_index=1).pending == type(root.pending)()
    store.set("/k", value="v", now_ns=NOW)
    assert keys(root) == [("set", "/k", 4)]
    with pytest.raises(V2Error):
        store.watch("/", recursive=True, since_index=1)  # the history holds 2..4


def test_save_and_restore_round_trip() -> None:
    store = V2Store()
    store.set("/b/x", value="1", now_ns=NOW)
    store.set("/a", value="", now_ns=NOW)
    store.set("/_hidden", value="h", now_ns=NOW)
    store.set("/ttl/d", dir=True, expire_ns=NOW + 5 * S + 7, now_ns=NOW)
    store.set("/t", value="v", expire_ns=NOW + 3 * S, now_ns=NOW)
    store.update("/t", value="w", expire_ns=NOW + 4 * S, now_ns=NOW)
    store.create("/q", value="job", unique=True, now_ns=NOW)
    store.watch("/a", stream=True)
    data = store.save()
    json.loads(data)
    restored = V2Store.restore(data)
    assert restored.index == store.index == 7
    assert restored.watcher_count == 0
    assert restored.stats.to_json(0) == {**store.stats.to_json(1), "watchers": 0}
    for recursive_sorted in (False, True):
        before = store.get("/", recursive=True, sorted=recursive_sorted, now_ns=NOW).to_json()
        assert restored.get("/", recursive=True, sorted=recursive_sorted, now_ns=NOW).to_json() == before
    assert restored.get("/_hidden", now_ns=NOW).node.value == "h"
    assert [e.node.key for e in restored.delete_expired(NOW + 10 * S)] == ["/t", "/ttl/d"]
    assert restored.save() != data
    # The history starts empty at the saved index.
    with pytest.raises(V2Error) as info:
        restored.watch("/a", since_index=7)
    assert info.value.cause == "the requested history has been cleared [8/7]"
    again = V2Store.restore(data)
    waiting = again.watch("/a", since_index=8)
    assert not waiting.removed
    again.set("/a", value="x", now_ns=NOW)
    assert keys(waiting) == [("set", "/a", 8)]


def test_restore_rejects_other_data() -> None:
    with pytest.raises(ValueError):
        V2Store.restore(b'{"version": 99}')

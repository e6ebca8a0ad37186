"""The v2 keys API inside a real `flotilla etcd --enable-v2` process: what the differential suite cannot
show — the v2 tree survives restarts (WAL replay and snapshots), TTLs expire through raft, a departed
watcher is removed, and the configurable history with its readable oldest index."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from processes import start_member


def _call(member, method: str, key: str, query: str = "", **form) -> tuple[int, dict, dict]:
    url = f"{member.endpoint}/v2/keys{key}" + (f"?{query}" if query else "")
    data = urllib.parse.urlencode(form).encode() if form else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_v2_tree_survives_kill_and_snapshots(tmp_path):
    member = start_member("flotilla", tmp_path, "--enable-v2", "--snapshot-count", "200")
    try:
        for i in range(450):  # two snapshots, and a WAL tail after the last one
            assert _call(member, "PUT", f"/dir/k{i % 50}", value=f"v{i}")[0] in (200, 201)
        _call(member, "PUT", "/permanent", value="p")
        _call(member, "POST", "/queue", value="job")
        status, headers, before = _call(member, "GET", "/", "recursive=true&sorted=true")
        assert status == 200
        member.kill()
        member.start()
        status, after_headers, after = _call(member, "GET", "/", "recursive=true&sorted=true")
        assert status == 200 and after == before
        assert after_headers["X-Etcd-Index"] == headers["X-Etcd-Index"]
        member.stop()
        member.start()
        assert _call(member, "GET", "/", "recursive=true&sorted=true")[2] == before
        # The index goes on from where it was: nothing is re-used.
        status, _, created = _call(member, "PUT", "/new", value="n")
        assert created["node"]["createdIndex"] == int(headers["X-Etcd-Index"]) + 1
    finally:
        member.stop()


def test_ttl_expires_through_raft_and_watchers_see_it(tmp_path):
    member = start_member("flotilla", tmp_path, "--enable-v2")
    try:
        status, _, body = _call(member, "PUT", "/short", value="v", ttl="1")
        assert status == 201 and body["node"]["ttl"] == 1 and body["node"]["expiration"].endswith("Z")
        created = body["node"]["modifiedIndex"]
        status, _, event = _call(member, "GET", "/short", f"wait=true&waitIndex={created + 1}")
        assert event["action"] == "expire" and event["prevNode"]["value"] == "v"
        assert _call(member, "GET", "/short")[0] == 404
        # A TTL that was refreshed lives on; an update without a TTL makes a key permanent.
        _call(member, "PUT", "/kept", value="k", ttl="2")
        _call(member, "PUT", "/kept", "refresh=true&prevExist=true&ttl=100")
        _call(member, "PUT", "/made-permanent", value="k", ttl="1")
        _call(member, "PUT", "/made-permanent", value="k2", prevExist="true")
        time.sleep(2.5)
        assert _call(member, "GET", "/kept")[2]["node"]["value"] == "k"
        assert "ttl" not in _call(member, "GET", "/made-permanent")[2]["node"]
        stats = json.loads(urllib.request.urlopen(f"{member.endpoint}/v2/stats/store", timeout=5).read())
        assert stats["expireCount"] == 1
    finally:
        member.stop()


def test_history_size_flag_and_oldest_index(tmp_path):
    member = start_member("flotilla", tmp_path, "--enable-v2", "--v2-history-size", "5000")
    try:
        first = _call(member, "PUT", "/h", value="0")[2]["node"]["modifiedIndex"]
        for i in range(1, 1500):
            _call(member, "PUT", "/h", value=str(i))
        # etcd's 1000 events would have cleared `first`; with 5000 it is still there.
        status, _, event = _call(member, "GET", "/h", f"wait=true&waitIndex={first}")
        assert status == 200 and event["node"]["value"] == "0"
    finally:
        member.stop()
    small = start_member("flotilla", tmp_path, "--enable-v2", "--v2-history-size", "10")
    try:
        first = _call(small, "PUT", "/h", value="0")[2]["node"]["modifiedIndex"]
        for i in range(1, 20):
            _call(small, "PUT", "/h", value=str(i))
        status, _, error = _call(small, "GET", "/h", f"wait=true&waitIndex={first}")
        assert status == 400 and error["errorCode"] == 401
        assert error["oldestIndex"] == first + 10
        assert _call(small, "GET", "/h", f"wait=true&waitIndex={error['oldestIndex']}")[0] == 200
    finally:
        small.stop()


def test_departed_watchers_are_removed(tmp_path):
    member = start_member("flotilla", tmp_path, "--enable-v2")
    try:
        def watch_and_leave():
            try:
                urllib.request.urlopen(f"{member.endpoint}/v2/keys/w?wait=true", timeout=0.5)
            except OSError:
                pass

        threads = [threading.Thread(target=watch_and_leave) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        def watchers() -> int:
            url = f"{member.endpoint}/v2/stats/store"
            return json.loads(urllib.request.urlopen(url, timeout=5).read())["watchers"]

        _wait_for(lambda: watchers() == 0)
    finally:
        member.stop()

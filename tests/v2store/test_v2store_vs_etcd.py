"""Differential check: the same seeded v2 operations on real etcd 3.4.23 (--enable-v2) and on V2Store
give the same JSON bodies, error bodies, statuses and counters.

No TTLs here (the two sides' clocks differ); tests/v2store/test_v2store_ttl.py covers them. GETs ask for
sorted listings because etcd's unsorted order is Go's random map order. Skipped without /usr/bin/etcd.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from flotilla.v2store import V2Error, V2Store

REAL_ETCD = "/usr/bin/etcd"
NOW = 1_795_000_000 * 1_000_000_000
COUNTERS = (
    "setsSuccess setsFail deleteSuccess deleteFail updateSuccess updateFail createSuccess createFail "
    "compareAndSwapSuccess compareAndSwapFail compareAndDeleteSuccess compareAndDeleteFail"
).split()
KEYS = ["/", "/a", "/a/b", "/a/b/c", "/b", "/_h", "/a/_h", "/c/d", "/c", "/q", "/ab"]
VALUES = ["", "x", "y", "one"]

pytestmark = pytest.mark.skipif(not os.path.exists(REAL_ETCD), reason="needs Debian's etcd 3.4")


def _free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in (2379, 2380, 4001, 7001):
            return port


class _Etcd:
    def __init__(self, base: str) -> None:
        self.port, peer = _free_port(), f"http://127.0.0.1:{_free_port()}"
        client = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [REAL_ETCD, "--enable-v2=true", "--data-dir", os.path.join(base, "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer, "--initial-cluster", f"default={peer}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def request(
        self, method: str, key: str, params: dict | None = None, timeout_s: float = 5
    ) -> tuple[int, dict, dict]:
        query = urllib.parse.urlencode(params or {})
        url = f"http://127.0.0.1:{self.port}/v2/keys{key}" + (f"?{query}" if query else "")
        req = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return resp.status, json.loads(resp.read()), dict(resp.headers)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read()), dict(err.headers)

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/stats/store", timeout=5) as resp:
            return json.loads(resp.read())

    def wait_ready(self) -> None:
        # Ready once membership and the cluster version are written to the v2 store (index 3).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "etcd exited"
            try:
                _, _, headers = self.request("GET", "/")
                if headers.get("X-Etcd-Index") == "3":
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.05)
        raise RuntimeError("etcd did not reach index 3")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture(scope="module")
def etcd() -> Iterator[_Etcd]:
    base = tempfile.mkdtemp(prefix="v2store-diff-")
    server = _Etcd(base)
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


def _ours(store: V2Store, op: str, key: str, p: dict) -> tuple[int, dict]:
    """What etcd's HTTP layer would call for the same request (a minimal mapping, for this test only)."""
    try:
        if op == "get":
            event = store.get(key, recursive=p.get("recursive") == "true", sorted=True, now_ns=NOW)
        elif op == "watch":
            watcher = store.watch(
                key, recursive=p.get("recursive") == "true", since_index=int(p["waitIndex"])
            )
            if not watcher.pending:
                store.unwatch(watcher)
                return 0, {}  # waiting: nothing in the history yet
            return 200, watcher.pending[0].to_json()  # a watch answers 200 whatever the event
        elif op == "post":
            event = store.create(key, value=p["value"], unique=True, now_ns=NOW)
        elif op == "put":
            event = _put(store, key, p)
        else:
            event = _delete(store, key, p)
    except V2Error as err:
        return err.status, err.to_json()
    return (201 if event.is_created else 200), event.to_json()


def _put(store: V2Store, key: str, p: dict):
    is_dir = p.get("dir") == "true"
    value = p.get("value", "")
    if "prevValue" in p or "prevIndex" in p:
        return store.compare_and_swap(
            key,
            prev_value=p.get("prevValue", ""),
            prev_index=int(p.get("prevIndex", 0)),
            value=value,
            now_ns=NOW,
        )
    if p.get("prevExist") == "true":
        return store.update(key, value=value, now_ns=NOW)
    if p.get("prevExist") == "false":
        return store.create(key, dir=is_dir, value=value, now_ns=NOW)
    return store.set(key, dir=is_dir, value=value, now_ns=NOW)


def _delete(store: V2Store, key: str, p: dict):
    if "prevValue" in p or "prevIndex" in p:
        return store.compare_and_delete(
            key, prev_value=p.get("prevValue", ""), prev_index=int(p.get("prevIndex", 0)), now_ns=NOW
        )
    return store.delete(key, dir=p.get("dir") == "true", recursive=p.get("recursive") == "true", now_ns=NOW)


def _random_request(rng: random.Random, index: int, first_index: int) -> tuple[str, str, dict]:
    key = rng.choice(KEYS)
    op = rng.choice(["get", "get", "put", "put", "put", "put", "delete", "delete", "post", "watch"])
    p: dict = {}
    if op == "get":
        if rng.random() < 0.5:
            p["recursive"] = "true"
        p["sorted"] = "true"
    elif op == "watch":
        p = {"wait": "true", "waitIndex": str(rng.randint(first_index, max(first_index, index)))}
        if rng.random() < 0.5:
            p["recursive"] = "true"
    elif op == "post":
        p["value"] = rng.choice(VALUES[1:])
    elif op == "put":
        kind = rng.choice(["set", "set", "dir", "create", "update", "cas"])
        if kind == "dir":
            p["dir"] = "true"
        else:
            p["value"] = rng.choice(VALUES)
        if kind == "create":
            p["prevExist"] = "false"
        elif kind == "update":
            p["prevExist"] = "true"
        elif kind == "cas":
            if rng.random() < 0.6:
                p["prevValue"] = rng.choice(VALUES[1:])
            if rng.random() < 0.6 or "prevValue" not in p:
                p["prevIndex"] = str(rng.randint(max(1, index - 5), index + 1))
    else:
        kind = rng.choice(["file", "dir", "recursive", "cad"])
        if kind in ("dir", "recursive"):
            p[kind] = "true"
        elif kind == "cad":
            p["prevValue"] = rng.choice(VALUES[1:])
    method = {"get": "GET", "watch": "GET", "put": "PUT", "delete": "DELETE", "post": "POST"}[op]
    return method, key, p


@pytest.mark.parametrize("seed", [1, 2])
def test_same_answers_as_etcd(etcd: _Etcd, seed: int) -> None:
    store = V2Store()
    # Bring our index to etcd's (membership writes, then any earlier seed's requests).
    _, _, headers = etcd.request("GET", "/")
    while store.index < int(headers["X-Etcd-Index"]):
        store.advance_index()
    # Earlier seeds' keys: start both from an empty tree.
    for key in KEYS[1:]:
        etcd.request("DELETE", key, {"recursive": "true"})
    _, _, headers = etcd.request("GET", "/")
    while store.index < int(headers["X-Etcd-Index"]):
        store.advance_index()
    stats_before = etcd.stats()
    ours_before = store.stats.to_json(0)
    rng = random.Random(seed)
    first_index = store.index + 1
    for step in range(150):
        method, key, params = _random_request(rng, store.index, first_index)
        op = (
            "watch"
            if "wait" in params
            else {"GET": "get", "PUT": "put", "DELETE": "delete", "POST": "post"}[method]
        )
        where = f"seed {seed} step {step}: {method} {key} {params}"
        ours = _ours(store, op, key, params)
        if ours == (0, {}):
            # Our history has no match: etcd must be waiting too.
            with pytest.raises((TimeoutError, urllib.error.URLError)):
                etcd.request(method, key, params, timeout_s=0.1)
            continue
        status, body, _ = etcd.request(method, key, params)
        assert ours == (status, body), where
    stats_after = etcd.stats()
    ours_after = store.stats.to_json(0)
    for name in COUNTERS:
        assert ours_after[name] - ours_before[name] == stats_after[name] - stats_before[name], name

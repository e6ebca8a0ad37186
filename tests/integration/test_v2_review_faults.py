"""Findings of the v2 review that show on a real `flotilla etcd --enable-v2` process: SIGTERM with an
open watch, and a deep key tree deleted recursively."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

from processes import start_member


def _request(member, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"{member.endpoint}{path}", data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _open_watch(member, query: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", member.client_port), timeout=5)
    sock.sendall(f"GET /v2/keys/w?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")  # the headers come at once
    return sock


def test_sigterm_with_open_watches_stops_the_member_at_once(tmp_path):
    """A watch nobody wrote to kept a stopping member alive for about two minutes (aiohttp waits for
    running handlers); etcd exits at once."""
    member = start_member("flotilla", tmp_path, "--enable-v2")
    sockets = []
    try:
        sockets = [_open_watch(member, "wait=true"), _open_watch(member, "wait=true&stream=true")]
        started = time.monotonic()
        assert member.stop(timeout_s=10) == 0
        assert time.monotonic() - started < 5
    finally:
        member.kill()
        for sock in sockets:
            sock.close()


def test_a_deep_tree_deleted_recursively_leaves_the_member_serving(tmp_path):
    """Deleting a directory deeper than Python's recursion limit stopped the member, and the entry
    replayed from the WAL stopped it again at every start."""
    member = start_member("flotilla", tmp_path, "--enable-v2")
    try:
        deep = "/d" * 1200
        assert _request(member, "PUT", f"/v2/keys{deep}", b"value=x")[0] == 201
        status, body = _request(member, "DELETE", "/v2/keys/d?recursive=true")
        assert status == 200 and body["action"] == "delete"
        assert _request(member, "PUT", "/v2/keys/after", b"value=ok")[0] == 201
        member.kill()
        member.start()
        status, body = _request(member, "GET", "/v2/keys/?recursive=true")
        assert status == 200 and [n["key"] for n in body["node"]["nodes"]] == ["/after"]
    finally:
        member.stop()

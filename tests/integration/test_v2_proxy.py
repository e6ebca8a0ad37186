"""`flotilla etcd --proxy on|readonly` in front of a 3-member Flotilla cluster: v2 requests through the
proxy with Debian's etcdctl and plain HTTP, a watch streaming through, a member down, every member down
(503), read-only mode (501), a restart from the proxy's data directory without the cluster flags; and a
member beyond a discovery token's size becoming a proxy (etcd's default --discovery-fallback)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from processes import MemberProcess, etcdctl, free_port, real_etcd_available, start_cluster

pytestmark = pytest.mark.skipif(not real_etcd_available(), reason="Debian's etcdctl not installed")
PROXY_READY = "proxy: listening for client requests on"


class Proxy:
    def __init__(self, data_dir, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "flotilla", "etcd", "--data-dir", str(data_dir),
                        "--listen-client-urls", self.url, *flags]  # fmt: skip
        self.proc: subprocess.Popen | None = None
        self.log: list[str] = []

    def start(self) -> Proxy:
        self.proc = subprocess.Popen(
            self.command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        ready = threading.Event()

        def read() -> None:
            for line in self.proc.stderr:
                self.log.append(line)
                if PROXY_READY in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(30), "".join(self.log[-20:])
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _http(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def cluster(tmp_path):
    members = start_cluster("flotilla", tmp_path / "cluster", 3, "--enable-v2=true")
    yield members
    for member in members:
        member.kill()


def test_requests_pass_through_the_proxy(cluster, tmp_path):
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster)
    proxy = Proxy(tmp_path / "proxy", "--proxy", "on", "--initial-cluster", initial).start()
    try:
        assert etcdctl(proxy.url, "set", "/via-proxy", "yes", api="2").stdout == "yes\n"
        assert etcdctl(cluster[2].endpoint, "get", "/via-proxy", api="2").stdout == "yes\n"
        status, body = _http("GET", f"{proxy.url}/v2/keys/via-proxy")
        direct = _http("GET", f"{cluster[0].endpoint}/v2/keys/via-proxy")
        assert status == 200 and json.loads(body) == json.loads(direct[1])
        # A watch streams through: it is answered when the change happens.
        answers: list[bytes] = []
        watch_url = f"{proxy.url}/v2/keys/w?wait=true"
        waiter = threading.Thread(target=lambda: answers.append(_http("GET", watch_url)[1]))
        waiter.start()
        time.sleep(0.5)
        assert not answers
        _http("PUT", f"{cluster[1].endpoint}/v2/keys/w", b"value=changed")
        waiter.join(10)
        assert json.loads(answers[0])["node"]["value"] == "changed"
        # One member down: the proxy uses the others.
        cluster[0].kill()
        for _ in range(5):
            assert _http("GET", f"{proxy.url}/v2/keys/via-proxy")[0] == 200
        # Every member down: etcd's 503.
        for member in cluster:
            member.kill()
        status, body = _http("GET", f"{proxy.url}/v2/keys/via-proxy")
        assert (status, body) == (503, b"proxy: zero endpoints currently available\n")
    finally:
        proxy.stop()
    saved = json.loads((tmp_path / "proxy" / "proxy" / "cluster").read_text())
    assert sorted(saved["PeerURLs"]) == sorted(m.peer_url for m in cluster)


def test_a_readonly_proxy_refuses_writes_and_restarts_from_its_data_dir(cluster, tmp_path):
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster)
    proxy = Proxy(tmp_path / "ro", "--proxy", "readonly", "--initial-cluster", initial).start()
    try:
        assert _http("PUT", f"{proxy.url}/v2/keys/x", b"value=1")[0] == 501
        assert _http("GET", f"{proxy.url}/v2/keys/")[0] == 200
    finally:
        proxy.stop()
    # Restarted without --initial-cluster: the saved cluster is used.
    again = Proxy(tmp_path / "ro", "--proxy", "on").start()
    try:
        assert etcdctl(again.url, "set", "/after-restart", "1", api="2").stdout == "1\n"
    finally:
        again.stop()


def test_a_member_beyond_the_discovery_size_becomes_a_proxy(tmp_path):
    service = subprocess.Popen(
        [sys.executable, "-m", "flotilla", "discovery", "--listen-addr", "127.0.0.1:0", "--data-dir",
         str(tmp_path / "discovery")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    members: list[MemberProcess] = []
    try:
        service_url = service.stdout.readline().rsplit(" ", 1)[1].strip()
        with urllib.request.urlopen(f"{service_url}/new?size=1", timeout=10) as response:
            token = response.read().decode().strip()
        members.append(
            MemberProcess("flotilla", tmp_path / "d1", free_port(), free_port(), ["--enable-v2=true"],
                          name="d1", discovery=token).start()  # fmt: skip
        )
        extra = Proxy(tmp_path / "d2", "--name", "d2", "--discovery", token,
                      "--initial-advertise-peer-urls", f"http://127.0.0.1:{free_port()}").start()  # fmt: skip
        try:
            assert any("discovery cluster full, falling back to proxy" in line for line in extra.log)
            assert etcdctl(extra.url, "set", "/through-fallback", "ok", api="2").stdout == "ok\n"
            assert etcdctl(members[0].endpoint, "get", "/through-fallback", api="2").stdout == "ok\n"
        finally:
            extra.stop()
    finally:
        for member in members:
            member.kill()
        service.terminate()
        service.wait(15)

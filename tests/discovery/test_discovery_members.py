"""`flotilla etcd --discovery` members (real processes) bootstrap from `flotilla discovery`, as etcd's do."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from discovery_harness import DiscoveryService, free_port, http, stop_process, wait_healthy


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = DiscoveryService(tmp_path_factory.mktemp("svc-members") / "data")
    try:
        yield svc.start()
    finally:
        svc.stop()


class _Member:
    def __init__(self, base, name: str, discovery_url: str, *extra: str) -> None:
        self.endpoint = f"http://127.0.0.1:{free_port()}"
        self.peer_url = f"http://127.0.0.1:{free_port()}"
        self.log_path = base / f"{name}.log"
        self.args = [
            sys.executable, "-m", "flotilla.cli.main", "etcd", "--name", name, "--data-dir", str(base / name),
            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--discovery", discovery_url, *extra,
        ]  # fmt: skip
        self.proc: subprocess.Popen | None = None

    def launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def test_flotilla_members_bootstrap_by_discovery(service, tmp_path):
    status, _, body = http("GET", f"{service.url}/new?size=3")
    assert status == 200
    url = body.decode()
    members = [_Member(tmp_path, f"f{i}", url) for i in range(3)]
    extra = _Member(tmp_path, "f3", url, "--discovery-fallback", "exit")
    try:
        for member in members:
            member.launch()
        for member in members:
            try:
                wait_healthy(member.endpoint, member.proc, member.args[5], 60)
            except RuntimeError as error:
                raise AssertionError(f"{error}\n{member.log()[-3000:]}") from None
        status, _, body = http("POST", f"{members[0].endpoint}/v3/cluster/member/list", data=b"{}")
        assert status == 200, body
        listed = json.loads(body)["members"]
        assert sorted(m["name"] for m in listed) == ["f0", "f1", "f2"]
        assert sorted(m["peerURLs"][0] for m in listed) == sorted(m.peer_url for m in members)
        # The registered IDs are the members' own (etcd's: hash of the peer URLs and the discovery URL).
        nodes = json.loads(http("GET", url)[2])["node"]["nodes"]
        assert {n["key"].rsplit("/", 1)[1] for n in nodes} == {format(int(m["ID"]), "x") for m in listed}

        extra.launch()
        extra.proc.wait(60)
        assert extra.proc.returncode != 0
        assert "discovery: cluster is full" in extra.log()
    finally:
        for member in [*members, extra]:
            stop_process(member.proc)

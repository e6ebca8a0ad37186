"""`flotilla up/status/down/kill` at their edges: no cluster, bad input refused before anything starts, a
port already taken, a milestone missed (everything started is stopped again), and a user's cloud-config
booted with its discovery URL pointed at the local service. Exit codes: 1 for errors, 0 otherwise."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from localcluster_harness import FLOTILLA, cluster_ports, user_env  # noqa: E402

from flotilla.localcluster import cluster_pids, down, read_record  # noqa: E402
from flotilla.machine import machine_pids  # noqa: E402


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A short state directory (the machines' unix sockets live under it); whatever a test started in
    it is stopped afterwards."""
    base = Path(tempfile.mkdtemp(prefix="flc-", dir="/tmp"))
    try:
        yield base / "state"
    finally:
        down(base / "state", echo=lambda line: None)
        shutil.rmtree(base, ignore_errors=True)


def _flotilla(state: Path, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = user_env(state.parent)
    argv = [str(FLOTILLA), *args, "--state-dir", str(state)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout_s)


@pytest.mark.parametrize("verb", [["status"], ["kill", "m1"]])
def test_status_and_kill_without_a_cluster_exit_1(state_dir: Path, verb: list[str]) -> None:
    result = _flotilla(state_dir, *verb)
    assert result.returncode == 1
    assert f"no cluster in {state_dir}; start one with: flotilla up" in result.stderr


def test_down_without_a_cluster_is_not_an_error(state_dir: Path) -> None:
    result = _flotilla(state_dir, "down")
    assert result.returncode == 0 and f"no cluster running in {state_dir}" in result.stdout


def test_a_bad_cloud_config_is_refused_with_its_line_before_anything_starts(state_dir: Path) -> None:
    bad = state_dir.parent / "user-data"
    bad.write_text("#cloud-config\ncoreos:\n  etcd2:\n    name: [a, b]\n")
    result = _flotilla(state_dir, "up", "--cloud-config", str(bad))
    assert result.returncode == 1
    assert re.search(rf"{re.escape(str(bad))}:4: .*name", result.stderr), result.stderr
    assert read_record(state_dir) is None and not state_dir.exists()


def test_a_port_in_use_on_a_machine_address_is_refused(state_dir: Path) -> None:
    client_port, peer_port = cluster_ports()
    with socket.socket() as taken:
        taken.bind(("127.0.0.3", peer_port))
        taken.listen()
        result = _flotilla(state_dir, "up", "--client-port", str(client_port), "--peer-port", str(peer_port))
    assert result.returncode == 1
    assert f"127.0.0.3:{peer_port} is in use" in result.stderr and "--peer-port" in result.stderr
    assert read_record(state_dir) is None


def test_a_missed_milestone_names_it_points_at_the_logs_and_stops_everything(state_dir: Path) -> None:
    client_port, peer_port = cluster_ports()
    args = ["up", "--client-port", str(client_port), "--peer-port", str(peer_port), "--timeout", "1"]
    result = _flotilla(state_dir, *args)
    assert result.returncode == 1
    assert "timed out: " in result.stderr and "did not" in result.stderr, result.stderr
    # Which milestone is missed depends on the machine's load: the machines' boot, usually.
    assert f"{state_dir}/m1.log" in result.stderr or f"{state_dir}/discovery.log" in result.stderr
    assert "stopping what was started" in result.stdout
    assert not cluster_pids(state_dir)


LISTING_1_ETCD2 = """\
#cloud-config

coreos:
  etcd2:
    # generate a new token for each unique cluster from https://discovery.etcd.io/new
    discovery: https://discovery.etcd.io/<token>
    advertise-client-urls: http://$private_ipv4:{client}
    listen-client-urls: http://$private_ipv4:{client}
    initial-advertise-peer-urls: http://$private_ipv4:{peer}
    listen-peer-urls: http://$private_ipv4:{peer}
  units:
    - name: etcd2.service
      command: start
    - name: fleet.service
      command: start
"""


@pytest.mark.slow
def test_a_user_cloud_config_boots_with_a_local_token_kill_takes_an_address_up_starts_afresh(
    state_dir: Path,
) -> None:
    client_port, peer_port = cluster_ports(1)
    user_data = state_dir.parent / "user-data"
    user_data.write_text(LISTING_1_ETCD2.format(client=client_port, peer=peer_port))
    result = _flotilla(state_dir, "up", "-n", "1", "--cloud-config", str(user_data))
    assert result.returncode == 0, result.stdout + result.stderr
    record = read_record(state_dir)
    assert record is not None and record.token_url.startswith(record.discovery_url + "/")
    booted = Path(record.machines[0].cloud_config).read_text()
    assert f"    discovery: {record.token_url}\n" in booted
    assert booted.replace(record.token_url, "https://discovery.etcd.io/<token>") == user_data.read_text()
    assert f"ETCDCTL_ENDPOINTS=http://127.0.0.2:{client_port}" in result.stdout

    status = _flotilla(state_dir, "status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"^m1\s+127\.0\.0\.2\s+running\s+\d+$", status.stdout, re.MULTILINE), status.stdout
    assert re.search(rf"^\S+\s+http://127\.0\.0\.2:{client_port}\s+yes$", status.stdout, re.MULTILINE)

    killed = _flotilla(state_dir, "kill", "127.0.0.2")
    assert killed.returncode == 0 and "machine m1 (127.0.0.2) killed" in killed.stdout
    again = _flotilla(state_dir, "kill", "m1")
    assert again.returncode == 1 and "machine m1 (127.0.0.2) is not running (killed)" in again.stderr
    status = _flotilla(state_dir, "status")
    assert status.returncode == 1 and re.search(r"^m1\s+127\.0\.0\.2\s+killed\s+-$", status.stdout, re.M)

    stopped = _flotilla(state_dir, "down")
    assert stopped.returncode == 0 and "discovery service stopped" in stopped.stdout
    assert not cluster_pids(state_dir) and (state_dir / "m1/var/log/journal").is_dir()

    # A new `up` starts afresh (the old member's data could not join a new token); the stopped cluster's
    # files are set aside, not deleted.
    result = _flotilla(state_dir, "up", "-n", "1", "--cloud-config", str(user_data))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"moved to {state_dir}/previous" in result.stdout
    assert (state_dir / "previous/m1/var/log/journal").is_dir() and (state_dir / "previous/m1.log").is_file()
    assert _flotilla(state_dir, "status").returncode == 0

    second = read_record(state_dir)
    assert second is not None
    purged = _flotilla(state_dir, "down", "--purge")
    assert purged.returncode == 0 and f"removed {state_dir}" in purged.stdout
    assert not state_dir.exists()
    assert not any(machine_pids(m.root) for m in second.machines)

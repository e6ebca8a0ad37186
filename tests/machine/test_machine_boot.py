"""One machine boots from its cloud-config as a CoreOS host does (issue 8, "A machine"): coreos.etcd2 and
coreos.fleet configure the vendor units, coreos.units starts them, write_files lands under the machine's
root; a clean stop takes fleet down before the store, and a kill -9 is a host failure: nothing survives."""

from __future__ import annotations

import os
import signal
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_harness import (  # noqa: E402
    ETCDCTL,
    etcdctl,
    fleet_machines,
    loopback_address,
    running_machine,
    wait_for,
)

from flotilla.machine import (  # noqa: E402
    MachineNotRunning,
    MachineSpec,
    kill_machine,
    machine_pids,
    read_state,
    stop_machine,
)
from flotilla.ports import free_port  # noqa: E402
from flotilla.systemd import JournalReader  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(ETCDCTL), reason="Debian's etcdctl not installed")

CLOUD_CONFIG = """\
#cloud-config
hostname: {hostname}
write_files:
  - path: /etc/flotilla/greeting
    permissions: "0600"
    content: hello from $private_ipv4
coreos:
  etcd2:
    name: {hostname}
    listen-client-urls: http://$private_ipv4:{client}
    advertise-client-urls: http://$private_ipv4:{client}
    listen-peer-urls: http://$private_ipv4:{peer}
    initial-advertise-peer-urls: http://$private_ipv4:{peer}
    initial-cluster: {hostname}=http://$private_ipv4:{peer}
  fleet:
    metadata: role=web
  units:
    - name: etcd2.service
      command: start
    - name: fleet.service
      command: start
"""


def _spec(tmp_path: Path, hostname: str = "core1") -> MachineSpec:
    ip = loopback_address()
    text = CLOUD_CONFIG.format(hostname=hostname, client=free_port(ip), peer=free_port(ip))
    (tmp_path / "user-data").write_text(text)
    return MachineSpec(root=tmp_path / hostname, cloud_config=tmp_path / "user-data", ip=ip)


def _stop_messages(root: Path) -> list[str]:
    reader = JournalReader(root / "var/log/journal")
    return [e.message for e in reader.entries() if e.message.startswith("Stopped ")]


def test_a_machine_boots_from_its_cloud_config_and_stops_cleanly(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    with running_machine(spec) as machine:
        state = read_state(spec.root)
        assert state is not None and state.phase == "running" and state.hostname == "core1"
        endpoint = state.etcd_endpoints[0]
        assert endpoint.startswith(f"http://{spec.ip}:")
        # The store answers as etcd does, through Debian's etcdctl.
        put = lambda: etcdctl(endpoint, "put", "greeting", "hi").returncode == 0  # noqa: E731
        wait_for(put, "the store to accept a put")
        assert etcdctl(endpoint, "get", "greeting", "--print-value-only").stdout == "hi\n"
        listed = etcdctl(endpoint, "member", "list")
        assert ", started, core1, " in listed.stdout
        # fleet sees this one machine, at the machine's address, with the cloud-config's metadata.
        rows = wait_for(lambda: fleet_machines(state.fleet_socket), "fleet to list the machine")
        assert len(rows) == 1 and rows[0][1] == spec.ip
        assert "role=web" in rows[0][2].split(",")
        # write_files landed under the root, substituted, with its permissions; the host's /etc is untouched.
        greeting = spec.root / "etc/flotilla/greeting"
        assert greeting.read_text() == f"hello from {spec.ip}"
        assert stat.S_IMODE(greeting.stat().st_mode) == 0o600
        assert not Path("/etc/flotilla/greeting").exists()
        assert (spec.root / "etc/hostname").read_text() == "core1\n"
        pids = machine.pids()
        assert len(pids) >= 4  # machine, manager, member, fleetd
        status = machine.stop()
    assert status == 0
    assert "stopped" in machine.log()
    assert read_state(spec.root).phase == "stopped"  # type: ignore[union-attr]
    assert not machine_pids(spec.root)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids if _alive(pid))
    stops = _stop_messages(spec.root)
    fleet = next(i for i, m in enumerate(stops) if m.startswith("Stopped fleet daemon"))
    store = next(i for i, m in enumerate(stops) if m.startswith("Stopped etcd member"))
    assert fleet < store, stops


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] not in (b"Z", b"X")


def test_kill_9_of_the_machine_leaves_no_process_of_it(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "core2")
    with running_machine(spec) as machine:
        endpoint = read_state(spec.root).etcd_endpoints[0]  # type: ignore[union-attr]
        wait_for(lambda: etcdctl(endpoint, "put", "k", "v").returncode == 0, "the store to answer")
        pids = machine.pids()
        assert len(pids) >= 4
        os.kill(machine.pid, signal.SIGKILL)  # the host dies: no clean-up code of the machine runs
        machine.process.wait()
        # The kernel kills the manager (PDEATHSIG) and the guard sweeps the units: no member, no fleetd.
        gone = lambda: not machine_pids(spec.root) and not any(_alive(pid) for pid in pids)  # noqa: E731
        wait_for(gone, "every process of the killed machine to be gone", 30)
        assert etcdctl(endpoint, "get", "k").returncode != 0


@pytest.mark.parametrize("by", ["handle", "root"])
def test_the_python_api_kill_is_a_host_failure_too(tmp_path: Path, by: str) -> None:
    spec = _spec(tmp_path, "core3")
    with running_machine(spec) as machine:
        pids = machine.pids()
        if by == "handle":
            machine.kill()
        else:
            kill_machine(spec.root)  # `flotilla kill`: from the root directory alone
        assert not machine_pids(spec.root)
        assert not any(_alive(pid) for pid in pids)
        assert read_state(spec.root).phase == "killed"  # type: ignore[union-attr]


def test_stop_and_kill_from_the_root_directory_alone(tmp_path: Path) -> None:
    """What `flotilla down` and `flotilla kill` use: no handle, only the machine's root."""
    spec = _spec(tmp_path, "core4")
    with running_machine(spec) as machine:
        assert stop_machine(spec.root).phase == "stopped"
        assert machine.process.wait(30) == 0
        assert not machine_pids(spec.root)
        with pytest.raises(MachineNotRunning, match="no machine runs there"):
            kill_machine(spec.root)

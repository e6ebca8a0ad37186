"""Bad input stops a machine's boot before anything is written (issue 8: "Bad input anywhere in a
cloud-config stops that machine's boot with the message, and no half-written files")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flotilla.machine import BootError, MachineSpec, boot


def _machine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flotilla", "machine", *args], capture_output=True, text=True, timeout=60
    )


def _nothing_under(root: Path) -> bool:
    return not root.exists() or not any(root.iterdir())


def test_a_cloud_config_with_errors_stops_the_boot_with_file_and_line(tmp_path: Path) -> None:
    user_data = tmp_path / "user-data"
    user_data.write_text(
        "#cloud-config\n"
        "write_files:\n"
        "  - path: /etc/a\n"
        "    permissions: 0abc\n"
        "coreos:\n"
        "  units:\n"
        "    - name: etcd.service\n"
        "      command: begin\n"
    )
    root = tmp_path / "m"
    result = _machine("--root", str(root), "--cloud-config", str(user_data), "--ip", "127.0.0.9")
    assert result.returncode == 1
    assert f"{user_data}:4: " in result.stderr
    assert f"{user_data}:8: " in result.stderr
    assert "cloud-config refused" in result.stderr
    assert _nothing_under(root)


def test_a_missing_header_is_refused_and_an_existing_root_is_left_as_it_was(tmp_path: Path) -> None:
    user_data = tmp_path / "user-data"
    user_data.write_text("hostname: x\n")
    root = tmp_path / "m"
    root.mkdir()
    result = _machine("--root", str(root), "--cloud-config", str(user_data))
    assert result.returncode == 1
    assert f'{user_data}:1: must be "#cloud-config" or begin with "#!"' in result.stderr
    assert _nothing_under(root)


def test_a_missing_file_bad_address_or_unknown_namespace_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "m"
    missing = _machine("--root", str(root), "--cloud-config", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "no such cloud-config file" in missing.stderr
    user_data = tmp_path / "user-data"
    user_data.write_text("#cloud-config\n")
    bad_ip = _machine("--root", str(root), "--cloud-config", str(user_data), "--ip", "300.1.1.1")
    assert bad_ip.returncode == 1 and "is not an IP address" in bad_ip.stderr
    netns = _machine("--root", str(root), "--cloud-config", str(user_data), "--netns", "flotilla-no-such-ns")
    assert netns.returncode == 1 and "ip netns add flotilla-no-such-ns" in netns.stderr
    assert _nothing_under(root)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert _machine("--root", str(tmp_path / "m")).returncode == 2


def test_boot_reports_the_refusal_with_the_machines_output(tmp_path: Path) -> None:
    user_data = tmp_path / "user-data"
    user_data.write_text("#cloud-config\nhostname: [1, 2]\n")
    spec = MachineSpec(root=tmp_path / "m", cloud_config=user_data, ip="127.0.0.9")
    with pytest.raises(BootError, match=r"user-data:2: "):
        boot(spec, log_path=tmp_path / "m.log")
    assert _nothing_under(spec.root)


def test_etcd_settings_the_member_cannot_take_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    user_data = tmp_path / "user-data"
    user_data.write_text(
        "#cloud-config\ncoreos:\n  etcd:\n    addr: 10.0.0.1:4001\n    bind-addr: 10.0.0.1:x\n"
    )
    root = tmp_path / "m"
    result = _machine("--root", str(root), "--cloud-config", str(user_data))
    assert result.returncode == 1
    assert "coreos.etcd.bind-addr" in result.stderr and "host:port" in result.stderr
    assert _nothing_under(root)

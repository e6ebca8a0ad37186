"""apply(): everything lands under the machine root, in coreos-cloudinit's layout, or nothing does."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from flotilla.cloudinit import ApplyError, CloudConfigError, apply, parse

FULL = """\
#cloud-config
hostname: m1
manage_etc_hosts: localhost
ssh_authorized_keys:
  - ssh-ed25519 AAAA core@laptop
users:
  - name: alice
    gecos: Alice A
    groups: [sudo, docker]
    passwd: $6$salt$hash
    ssh-authorized-keys: ["ssh-rsa BBBB alice@host "]
write_files:
  - path: /etc/motd
    permissions: '0600'
    owner: alice
    content: hello $private_ipv4
  - path: /opt/bin/tool
    permissions: 0755
    encoding: b64
    content: IyEvYmluL3NoCg==
coreos:
  etcd2:
    name: m1
    advertise-client-urls: http://$private_ipv4:2479
    heartbeat-interval: 100
    debug: true
  fleet:
    metadata: region=eu,"disk"=ssd
    public-ip: $public_ipv4
  locksmith:
    window-start: Thu 04:00
    window-length: 1h
  flannel:
    interface: eth0
  update:
    reboot-strategy: etcd-lock
    group: beta
  oem:
    id: flotilla
    name: Flotilla Local
  units:
    - name: hello.service
      command: start
      enable: true
      content: |
        [Service]
        ExecStart=/bin/echo hi
        [Install]
        WantedBy=multi-user.target
    - name: etcd2.service
      command: start
      drop-ins:
        - name: 30-extra.conf
          content: |
            [Service]
            Environment=X=1
    - name: rt.service
      runtime: true
      content: "[Service]\\nExecStart=/bin/true\\n"
    - name: update-engine.service
      command: stop
      mask: true
"""
ENV = {"private_ipv4": "127.0.0.2", "public_ipv4": "198.51.100.2"}


def read(root: Path, path: str) -> str:
    return (root / path.lstrip("/")).read_text()


def mode(root: Path, path: str) -> int:
    return stat.S_IMODE((root / path.lstrip("/")).stat().st_mode)


def test_full_config_writes_the_expected_tree(tmp_path: Path) -> None:
    applied = apply(FULL, tmp_path, ENV, source="m1.yaml")
    assert read(tmp_path, "/etc/hostname") == "m1\n"
    assert read(tmp_path, "/etc/hosts") == "127.0.0.1 m1\n"
    assert (
        read(tmp_path, "/etc/environment")
        == "COREOS_PRIVATE_IPV4=127.0.0.2\nCOREOS_PUBLIC_IPV4=198.51.100.2\n"
    )
    assert read(tmp_path, "/etc/motd") == "hello 127.0.0.2" and mode(tmp_path, "/etc/motd") == 0o600
    assert read(tmp_path, "/opt/bin/tool") == "#!/bin/sh\n" and mode(tmp_path, "/opt/bin/tool") == 0o755
    assert read(tmp_path, "/etc/coreos/update.conf") == "GROUP=beta\nREBOOT_STRATEGY=etcd-lock\n"
    assert read(tmp_path, "/etc/oem-release").startswith('ID=flotilla\nVERSION_ID=\nNAME="Flotilla Local"\n')
    assert not list(tmp_path.rglob(".cloudinit-*")), "temporary files left behind"
    assert applied.hostname == "m1"
    assert applied.environment == {"COREOS_PRIVATE_IPV4": "127.0.0.2", "COREOS_PUBLIC_IPV4": "198.51.100.2"}


def test_daemon_sections_become_runtime_drop_ins(tmp_path: Path) -> None:
    applied = apply(FULL, tmp_path, ENV)
    drop_ins = tmp_path / "run/systemd/system"
    assert (drop_ins / "etcd2.service.d/20-cloudinit.conf").read_text() == (
        "[Service]\n"
        'Environment="ETCD_NAME=m1"\n'
        'Environment="ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.2:2479"\n'
        'Environment="ETCD_HEARTBEAT_INTERVAL=100"\n'
        'Environment="ETCD_DEBUG=true"\n'
    )
    assert (drop_ins / "fleet.service.d/20-cloudinit.conf").read_text() == (
        '[Service]\nEnvironment="FLEET_METADATA=region=eu,\\"disk\\"=ssd"\n'
        'Environment="FLEET_PUBLIC_IP=198.51.100.2"\n'
    )
    assert (drop_ins / "locksmithd.service.d/20-cloudinit.conf").read_text() == (
        '[Service]\nEnvironment="LOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00"\n'
        'Environment="LOCKSMITHD_REBOOT_WINDOW_LENGTH=1h"\n'
    )
    assert (drop_ins / "flanneld.service.d/20-cloudinit.conf").read_text() == (
        '[Service]\nEnvironment="FLANNELD_IFACE=eth0"\n'
    )
    assert applied.etcd2 == {
        "name": "m1",
        "advertise-client-urls": "http://127.0.0.2:2479",
        "heartbeat-interval": "100",
        "debug": "true",
    }
    assert applied.fleet == {"metadata": 'region=eu,"disk"=ssd', "public-ip": "198.51.100.2"}
    assert applied.etcd == {}


def test_units_are_placed_and_the_next_steps_returned(tmp_path: Path) -> None:
    applied = apply(FULL, tmp_path, ENV)
    assert read(tmp_path, "/etc/systemd/system/hello.service").startswith(
        "[Service]\nExecStart=/bin/echo hi\n"
    )
    assert (
        read(tmp_path, "/etc/systemd/system/etcd2.service.d/30-extra.conf") == "[Service]\nEnvironment=X=1\n"
    )
    assert read(tmp_path, "/run/systemd/system/rt.service") == "[Service]\nExecStart=/bin/true\n"
    masked = tmp_path / "etc/systemd/system/update-engine.service"
    assert masked.is_symlink() and os.readlink(masked) == "/dev/null"
    # The document's units in order, then what coreos.update asks for (locksmithd for the strategy,
    # update-engine for group/server), as coreos-cloudinit orders them.
    assert applied.commands == (
        ("hello.service", "start"),
        ("etcd2.service", "start"),
        ("update-engine.service", "stop"),
        ("locksmithd.service", "restart"),
        ("update-engine.service", "restart"),
    )
    assert applied.enable == ("hello.service",)
    assert applied.daemon_reload and not applied.restart_networkd


def test_users_and_keys_are_recorded_under_the_root(tmp_path: Path) -> None:
    applied = apply(FULL, tmp_path, ENV)
    passwd = read(tmp_path, "/etc/passwd").splitlines()
    assert passwd == [
        "alice:x:1000:1000:Alice A:/home/alice:/bin/bash",
        "core:x:500:500::/home/core:/bin/bash",
    ]
    assert read(tmp_path, "/etc/group").splitlines() == [
        "alice:x:1000:",
        "sudo:x:1001:alice",
        "docker:x:1002:alice",
        "core:x:500:",
    ]
    assert read(tmp_path, "/etc/shadow").splitlines()[0] == "alice:$6$salt$hash::0:::::"
    assert mode(tmp_path, "/etc/shadow") == 0o640
    keys = "/home/alice/.ssh/authorized_keys.d/coreos-cloudinit"
    assert read(tmp_path, keys) == "ssh-rsa BBBB alice@host\n" and mode(tmp_path, keys) == 0o600
    assert read(tmp_path, "/home/alice/.ssh/authorized_keys") == "ssh-rsa BBBB alice@host\n"
    assert read(tmp_path, "/home/core/.ssh/authorized_keys") == "ssh-ed25519 AAAA core@laptop\n"
    assert mode(tmp_path, "/home/core/.ssh") == 0o700
    if os.geteuid() == 0:  # owners resolve in the machine's own etc/passwd, not the host's
        assert (tmp_path / "etc/motd").stat().st_uid == 1000 and applied.owners_not_applied == ()
    else:
        assert (tmp_path / "etc/motd", "alice") in applied.owners_not_applied


def test_existing_files_are_merged(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "coreos").mkdir(parents=True)
    (etc / "environment").write_text("PATH=/bin\nCOREOS_PRIVATE_IPV4=1.1.1.1\n")
    (etc / "coreos/update.conf").write_text("GROUP=stable\nSERVER=https://u.example\n")
    (etc / "passwd").write_text("alice:x:1500:1500::/home/alice:/bin/zsh\n")
    (etc / "shadow").write_text("alice:old::0:::::\n")
    apply(
        "#cloud-config\nusers:\n  - name: alice\n    passwd: new\ncoreos:\n  update:\n    group: alpha\n",
        tmp_path,
        {"private_ipv4": "10.0.0.9"},
    )
    assert read(tmp_path, "/etc/environment") == "PATH=/bin\nCOREOS_PRIVATE_IPV4=10.0.0.9\n"
    assert read(tmp_path, "/etc/coreos/update.conf") == "GROUP=alpha\nSERVER=https://u.example\n"
    assert read(tmp_path, "/etc/passwd") == "alice:x:1500:1500::/home/alice:/bin/zsh\n"
    assert read(tmp_path, "/etc/shadow") == "alice:new::0:::::\n"


def test_written_environment_file_wins_over_the_generated_one(tmp_path: Path) -> None:
    apply("#cloud-config\nwrite_files:\n  - path: /etc/environment\n    content: A=1\n", tmp_path, ENV)
    assert read(tmp_path, "/etc/environment") == "A=1"


def test_reboot_strategy_off_stops_and_masks_locksmithd(tmp_path: Path) -> None:
    applied = apply("#cloud-config\ncoreos:\n  update:\n    reboot-strategy: 'off'\n", tmp_path)
    assert applied.commands == (("locksmithd.service", "stop"),)
    assert os.readlink(tmp_path / "run/systemd/system/locksmithd.service") == "/dev/null"


def test_runtime_unit_unmasks_a_runtime_mask(tmp_path: Path) -> None:
    run = tmp_path / "run/systemd/system"
    run.mkdir(parents=True)
    (run / "a.service").symlink_to("/dev/null")
    (run / "b.service").write_text("[Service]\nExecStart=/bin/true\n")
    applied = apply(
        "#cloud-config\ncoreos:\n  units:\n    - {name: a.service, runtime: true}\n"
        "    - {name: b.service, runtime: true}\n",
        tmp_path,
    )
    assert not (run / "a.service").is_symlink() and (run / "b.service").exists()
    assert applied.removed == (run / "a.service",)


def test_network_units_go_to_systemd_network(tmp_path: Path) -> None:
    applied = apply(
        "#cloud-config\ncoreos:\n  units:\n    - name: 10-lo.network\n      command: restart\n"
        "      content: |\n        [Match]\n        Name=lo\n",
        tmp_path,
    )
    assert (tmp_path / "etc/systemd/network/10-lo.network").read_text() == "[Match]\nName=lo\n"
    assert applied.restart_networkd and applied.commands == ()


def test_paths_cannot_climb_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "m"
    apply("#cloud-config\nwrite_files:\n  - path: ../../escape\n    content: x\n", root)
    assert (root / "escape").read_text() == "x"
    assert not (tmp_path / "escape").exists()


def test_a_symlink_leading_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "m", tmp_path / "host-etc"
    root.mkdir()
    outside.mkdir()
    (root / "etc").symlink_to(outside)
    with pytest.raises(ApplyError, match="outside the machine root"):
        apply("#cloud-config\nhostname: m1\n", root)
    assert list(outside.iterdir()) == []


def test_a_bad_config_writes_nothing(tmp_path: Path) -> None:
    bad = FULL.replace("permissions: '0600'", "permissions: '0900'")
    with pytest.raises(CloudConfigError) as caught:
        apply(bad, tmp_path, ENV, source="m1.yaml")
    assert "m1.yaml:14: invalid value 0900" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_midway_replaces_nothing(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hostname").write_text("old\n")
    (tmp_path / "etc/b").mkdir()  # the second file's destination cannot be a file
    config = parse(
        "#cloud-config\nhostname: new\nwrite_files:\n  - {path: /etc/a, content: a}\n  - {path: /etc/b}\n"
    )
    with pytest.raises(ApplyError, match="is a directory"):
        apply(config, tmp_path)
    assert read(tmp_path, "/etc/hostname") == "old\n"
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["b", "hostname"]


def test_binary_content_is_written_as_is(tmp_path: Path) -> None:
    blob = bytes(range(256))
    encoded = base64.b64encode(blob).decode()
    text = f"#cloud-config\nwrite_files:\n  - path: /x.bin\n    encoding: base64\n    content: {encoded}\n"
    apply(text, tmp_path)
    assert (tmp_path / "x.bin").read_bytes() == blob

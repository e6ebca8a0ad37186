"""The vendor units and the drop-ins a machine's boot writes: what etcd.service, etcd2.service and
fleet.service end up running once the cloud-config's 20-cloudinit.conf and Flotilla's 30-flotilla.conf
apply on top (systemd's order: the vendor unit, then drop-ins sorted by name, a later assignment wins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.cloudinit import parse
from flotilla.machine import MachineSpec, etcd04_environment
from flotilla.machine.boot import install
from flotilla.machine.vendor import VendorContext, VendorError, client_urls, etcd_unit
from flotilla.systemd import Layout
from flotilla.systemd.loader import load_unit
from flotilla.units import SpecifierContext

LISTING_1 = (
    (Path(__file__).resolve().parents[2] / "examples/cloud-config/listing1.yml")
    .read_text()
    .replace("https://discovery.etcd.io/<token>", "http://10.9.9.254:8087/0123456789abcdef")
)


def _installed(
    tmp_path: Path, text: str, ip: str = "10.9.9.1"
) -> tuple[MachineSpec, dict[str, dict[str, str]]]:
    (tmp_path / "user-data").write_text(text)
    spec = MachineSpec(root=tmp_path / "root with space", cloud_config=tmp_path / "user-data", ip=ip)
    config = parse(text, substitutions=spec.substitutions)
    install(spec, config, echo=lambda line: None)
    layout = Layout.at(spec.root)
    envs = {}
    for name in ("etcd.service", "etcd2.service", "fleet.service"):
        loaded = load_unit(layout, name, SpecifierContext(unit_name=name))
        assert loaded.load_state == "loaded", loaded.load_error
        envs[name] = dict(loaded.config.environment)
        envs[name]["argv"] = " ".join(loaded.config.exec_start[0].expand({})[1])
    return spec, envs


def test_listing_1_etcd_0_4_settings_become_etcd_3_4_urls(tmp_path: Path) -> None:
    spec, envs = _installed(tmp_path, LISTING_1)
    etcd = envs["etcd.service"]
    assert etcd["ETCD_ADVERTISE_CLIENT_URLS"] == "http://10.9.9.1:4001"
    assert etcd["ETCD_LISTEN_CLIENT_URLS"] == "http://10.9.9.1:4001"  # 0.4 listened where it advertised
    assert etcd["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "http://10.9.9.1:7001"
    assert etcd["ETCD_LISTEN_PEER_URLS"] == "http://10.9.9.1:7001"
    assert etcd["ETCD_DISCOVERY"] == "http://10.9.9.254:8087/0123456789abcdef"  # same name in 0.4 and 3.4
    assert etcd["ETCD_DATA_DIR"] == f"{spec.root}/var/lib/etcd"
    assert etcd["ETCD_NAME"] == (spec.root / "etc/machine-id").read_text().strip()
    assert etcd["argv"].endswith("-m flotilla etcd")
    fleet = envs["fleet.service"]
    assert fleet["FLEET_ETCD_SERVERS"] == "http://10.9.9.1:4001"  # this machine's member
    assert fleet["FLEET_SYSTEMD_ROOT"] == str(spec.root)
    assert fleet["FLEET_PUBLIC_IP"] == "10.9.9.1"
    assert fleet["FLEET_METADATA"] == f"flotilla_systemd_root={spec.root}"
    assert envs["etcd2.service"]["ETCD_DATA_DIR"] == f"{spec.root}/var/lib/etcd2"


def test_defaults_without_daemon_settings_use_the_machine_address(tmp_path: Path) -> None:
    _, envs = _installed(tmp_path, "#cloud-config\n", ip="127.0.0.7")
    assert envs["etcd2.service"]["ETCD_LISTEN_CLIENT_URLS"] == "http://127.0.0.7:2379"
    assert envs["etcd2.service"]["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "http://127.0.0.7:2380"
    assert envs["fleet.service"]["FLEET_ETCD_SERVERS"] == "http://127.0.0.7:2379"


def test_the_cloud_configs_fleet_and_etcd2_settings_win_and_directories_stay_under_the_root(
    tmp_path: Path,
) -> None:
    text = (
        "#cloud-config\ncoreos:\n  etcd2:\n    listen-client-urls: http://0.0.0.0:5001\n"
        "    data-dir: /var/lib/etcd2\n  fleet:\n    etcd_servers: http://10.0.0.1:2379\n"
        "    metadata: region=eu,disk=ssd\n    public-ip: 192.0.2.4\n"
    )
    spec, envs = _installed(tmp_path, text)
    assert envs["etcd2.service"]["ETCD_LISTEN_CLIENT_URLS"] == "http://0.0.0.0:5001"
    assert envs["etcd2.service"]["ETCD_DATA_DIR"] == f"{spec.root}/var/lib/etcd2"  # never the host's /var
    fleet = envs["fleet.service"]
    assert fleet["FLEET_ETCD_SERVERS"] == "http://10.0.0.1:2379"
    assert fleet["FLEET_PUBLIC_IP"] == "192.0.2.4"
    assert fleet["FLEET_METADATA"] == f"region=eu,disk=ssd,flotilla_systemd_root={spec.root}"


def test_etcd_0_4_bind_addresses_certificates_and_renamed_settings() -> None:
    env = etcd04_environment(
        {
            "addr": "10.0.0.1:4001",
            "bind_addr": "0.0.0.0",
            "peer-addr": "10.0.0.1:7001",
            "peer-bind-addr": "10.0.0.1:7101",
            "cert-file": "/c.pem",
            "ca-file": "/ca.pem",
            "snapshot-count": "500",
            "data-dir": "/var/lib/etcd",
        },
        "/m",
    )
    assert env["ETCD_ADVERTISE_CLIENT_URLS"] == "https://10.0.0.1:4001"
    assert env["ETCD_LISTEN_CLIENT_URLS"] == "https://0.0.0.0:4001"  # the port comes from addr
    assert env["ETCD_LISTEN_PEER_URLS"] == "http://10.0.0.1:7101"
    assert env["ETCD_TRUSTED_CA_FILE"] == "/ca.pem" and env["ETCD_CLIENT_CERT_AUTH"] == "true"
    assert env["ETCD_SNAPSHOT_COUNT"] == "500"
    assert env["ETCD_DATA_DIR"] == "/m/var/lib/etcd"
    with pytest.raises(VendorError, match="bind-addr"):
        etcd04_environment({"addr": "10.0.0.1:4001", "bind-addr": "10.0.0.2:x"}, "/m")


def test_fleet_talks_to_the_advertised_client_url_of_this_machine() -> None:
    assert client_urls({}, {"advertise-client-urls": "http://a:1,http://b:2"}, "10.0.0.1") == (
        "http://a:1",
        "http://b:2",
    )
    assert client_urls({}, {"listen-client-urls": "http://0.0.0.0:5"}, "10.0.0.1") == ("http://10.0.0.1:5",)
    assert client_urls({"addr": "10.0.0.1:4001"}, {}, "10.0.0.1") == ("http://10.0.0.1:4001",)
    assert client_urls({}, {}, "fd00::1") == ("http://[fd00::1]:2379",)


def test_an_interpreter_path_that_cannot_be_an_execstart_is_refused() -> None:
    context = VendorContext(
        root="/m", python="/opt/100%/python", ip="10.0.0.1", public_ip="10.0.0.1", machine_id="x"
    )
    with pytest.raises(VendorError, match="no '%'"):
        etcd_unit(context, "etcd.service")

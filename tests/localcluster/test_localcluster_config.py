"""The pure parts of `flotilla up`: the default cloud-config, the discovery URL swapped into a user's
cloud-config, the cluster record and the lines printed for the user."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.cloudinit import parse
from flotilla.localcluster import (
    ClusterRecord,
    MachineEntry,
    default_cloud_config,
    machine_ip,
    machine_name,
    next_steps,
    replace_discovery,
)

TOKEN = "http://127.0.0.1:40123/0123456789abcdef0123456789abcdef"

# The seeds' Listing 1 (etcd 0.4 settings), as a user would pass it with --cloud-config.
LISTING_1 = (Path(__file__).resolve().parents[2] / "examples/cloud-config/listing1.yml").read_text()


def test_machines_are_named_m1_and_live_on_127_0_0_2_onwards() -> None:
    assert [machine_name(i) for i in range(3)] == ["m1", "m2", "m3"]
    assert [machine_ip(i) for i in range(3)] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    with pytest.raises(ValueError, match="out of range"):
        machine_ip(250)


def test_the_default_cloud_config_is_valid_and_says_what_the_machine_runs() -> None:
    text = default_cloud_config(1, TOKEN, 12379, 12380)
    config = parse(text, source="m2.yaml", substitutions={"private_ipv4": "127.0.0.3"})
    assert config.hostname == "m2"
    etcd2 = {key.replace("_", "-"): value for key, value in config.etcd2}
    assert etcd2["discovery"] == TOKEN
    assert etcd2["name"] == "m2"
    assert etcd2["advertise-client-urls"] == etcd2["listen-client-urls"] == "http://127.0.0.3:12379"
    assert etcd2["initial-advertise-peer-urls"] == etcd2["listen-peer-urls"] == "http://127.0.0.3:12380"
    fleet = {key.replace("_", "-"): value for key, value in config.fleet}
    assert fleet == {"public-ip": "127.0.0.3", "metadata": "machine=m2"}
    assert [(u.name, u.command) for u in config.units] == [
        ("etcd2.service", "start"),
        ("fleet.service", "start"),
    ]


def test_the_discovery_url_of_a_user_config_is_replaced_in_place() -> None:
    text, replaced = replace_discovery(LISTING_1, TOKEN)
    assert replaced == 1
    assert f"    discovery: {TOKEN}\n" in text
    # Nothing else moves: comments and line numbers stay as the user wrote them.
    assert len(text.splitlines()) == len(LISTING_1.splitlines())
    assert text.replace(TOKEN, "https://discovery.etcd.io/<token>") == LISTING_1
    config = parse(text, source="user-data", substitutions={"private_ipv4": "127.0.0.2"})
    assert dict(config.etcd)["discovery"] == TOKEN


@pytest.mark.parametrize("value", ['"https://discovery.etcd.io/abc"', "'https://discovery.etcd.io/abc'"])
def test_a_quoted_discovery_url_is_replaced_whole(value: str) -> None:
    text = f"#cloud-config\ncoreos:\n  etcd2:\n    discovery: {value}  # the token\n"
    replaced, count = replace_discovery(text, TOKEN)
    assert (
        count == 1 and replaced == f"#cloud-config\ncoreos:\n  etcd2:\n    discovery: {TOKEN}  # the token\n"
    )


def test_other_discovery_keys_and_configs_without_one_are_left_alone() -> None:
    text = "#cloud-config\ncoreos:\n  etcd2:\n    discovery-srv: example.com\n    name: a\n"
    assert replace_discovery(text, TOKEN) == (text, 0)


def _record() -> ClusterRecord:
    record = ClusterRecord(state_dir="/s", size=2, client_port=2379, peer_port=2380)
    for index in range(2):
        name, ip = machine_name(index), machine_ip(index)
        record = record.with_machine(
            MachineEntry(name, ip, f"/s/{name}", f"/s/{name}.yaml", f"/s/{name}.log")
        )
    return record


@pytest.mark.parametrize("given", ["m2", "127.0.0.3", "4b8fefcc.../127.0.0.3", " m2 "])
def test_a_machine_is_found_by_name_address_or_fleetctl_column(given: str) -> None:
    found = _record().find(given)
    assert found is not None and found.name == "m2"


@pytest.mark.parametrize("given", ["m3", "127.0.0.4", "", "m"])
def test_an_unknown_machine_is_not_found(given: str) -> None:
    assert _record().find(given) is None


def test_the_record_survives_a_round_trip_through_json() -> None:
    record = _record()
    assert ClusterRecord.from_json(record.to_json()) == record


def test_next_steps_are_the_exports_a_curl_status_and_down() -> None:
    endpoints = ["http://127.0.0.2:2379", "http://127.0.0.3:2379"]
    text = next_steps(
        etcd_endpoints=endpoints,
        activate="/repo/.venv/bin/activate",
    )
    assert text.splitlines() == [
        "  source /repo/.venv/bin/activate",
        "  export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=http://127.0.0.2:2379,http://127.0.0.3:2379",
        "  export FLEETCTL_DRIVER=etcd FLEETCTL_ENDPOINT=http://127.0.0.2:2379,http://127.0.0.3:2379",
        '  curl -L http://127.0.0.2:2379/v2/keys/message -XPUT -d value="Hello world"',
        "  flotilla status",
        "  flotilla down",
    ]
    other = next_steps(etcd_endpoints=endpoints, state_dir_export="/x y")
    assert other.splitlines()[0] == "  export FLOTILLA_STATE_DIR='/x y'"

"""From etcd's flags to the server's settings: IDs as etcd computes them, and flags this member cannot
honour yet refused at start instead of ignored."""

from __future__ import annotations

import pytest

from flotilla.etcd.config import parse_args
from flotilla.etcd.ids import format_id
from flotilla.etcd.member import settings_from_config


def _config(tmp_path, *flags: str):
    return parse_args(["--data-dir", str(tmp_path / "d"), *flags], {})


def test_default_member_has_etcds_ids(tmp_path):
    settings = settings_from_config(_config(tmp_path))
    # etcd 3.4.23 started with all defaults reports exactly these (checked with etcdctl -w json).
    assert format_id(settings.member_id) == "8e9e05c52164694d"
    assert format_id(settings.cluster_id) == "cdf818194e3a8c32"
    assert [m.name for m in settings.members] == ["default"]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--listen-client-urls", "https://127.0.0.1:1", "--advertise-client-urls", "https://127.0.0.1:1"],
         "client TLS"),
        (["--auto-tls"], "client TLS"),
        (["--discovery-srv", "example.com"], "DNS SRV discovery"),
        (["--peer-auto-tls"], "--peer-auto-tls"),
    ],
)  # fmt: skip
def test_unsupported_flags_stop_the_member_saying_why(tmp_path, flags, named):
    with pytest.raises(SystemExit) as stopped:
        settings_from_config(_config(tmp_path, *flags))
    assert named in str(stopped.value)
    assert "not supported yet" in str(stopped.value)


def test_founding_members_share_ids_and_listen_for_peers(tmp_path):
    flags = ["--initial-cluster", "default=http://localhost:2380,b=http://127.0.0.1:2390"]
    settings = settings_from_config(_config(tmp_path, *flags))
    other = settings_from_config(
        _config(tmp_path, "--name", "b", "--initial-advertise-peer-urls", "http://127.0.0.1:2390", *flags)
    )
    assert settings.cluster_id == other.cluster_id
    assert {m.id for m in settings.members} == {m.id for m in other.members}
    assert settings.member_id != other.member_id
    assert settings.listen_peer_urls == ("http://localhost:2380",)
    assert not settings.join_existing


def test_joining_without_a_reachable_member_says_where_it_looked(tmp_path):
    flags = [
        "--initial-cluster-state", "existing",
        "--initial-cluster", "default=http://localhost:2380,b=http://127.0.0.1:9",
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="cannot fetch cluster info from peer urls.*127.0.0.1:9"):
        settings_from_config(_config(tmp_path, *flags))

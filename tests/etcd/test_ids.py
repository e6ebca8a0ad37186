"""Member and cluster IDs equal real etcd 3.4.23's for the same flags.

Every expected value below was read from a real etcd 3.4.23 (Debian's /usr/bin/etcd) started with the
flags in the test's name and docstring: its log lines "starting member <id> in cluster <id>" and
"added member <id> [<peer urls>] to cluster <id>", `etcdctl member list -w json` (header and members)
and `etcdctl member add`.
"""

import pytest

from flotilla.etcd.ids import cluster_id, format_id, member_id, parse_id


def test_single_member_with_the_default_token():
    """--initial-advertise-peer-urls http://127.0.0.1:23801, token etcd-cluster (the default)."""
    mid = member_id(["http://127.0.0.1:23801"], "etcd-cluster")
    assert format_id(mid) == "bdae9bbc11dd390d"
    assert format_id(cluster_id([mid])) == "d1cfaf999eb97a2a"


def test_single_member_as_etcdctl_reports_it_in_decimal():
    """--name solo, peer http://127.0.0.1:41239, --initial-cluster-token flotilla-test; `etcdctl member list
    -w json` showed member_id 9319847383020424470 and cluster_id 13258063161977462534 in the header."""
    mid = member_id(["http://127.0.0.1:41239"], "flotilla-test")
    assert mid == 9319847383020424470
    assert cluster_id([mid]) == 13258063161977462534


def test_a_member_with_two_peer_urls_hashes_them_sorted():
    """--initial-cluster infra0=http://127.0.0.1:41232,infra0=http://127.0.0.1:41233, token tok-1."""
    expected = "5f8fb2b1ae89c144"
    assert format_id(member_id(["http://127.0.0.1:41233", "http://127.0.0.1:41232"], "tok-1")) == expected
    assert format_id(member_id(["http://127.0.0.1:41232", "http://127.0.0.1:41233"], "tok-1")) == expected
    assert format_id(cluster_id([int(expected, 16)])) == "9288f5874df0e01"


def test_three_founding_members_and_their_cluster():
    """--initial-cluster infra0=http://10.0.1.10:2380,infra1=http://127.0.0.1:41235,
    infra2=http://10.0.1.12:2380 --initial-cluster-token etcd-cluster-1 (started as infra1)."""
    token = "etcd-cluster-1"
    ids = {
        "infra0": member_id(["http://10.0.1.10:2380"], token),
        "infra1": member_id(["http://127.0.0.1:41235"], token),
        "infra2": member_id(["http://10.0.1.12:2380"], token),
    }
    assert {name: format_id(i) for name, i in ids.items()} == {
        "infra0": "140fedbeeb74765d",
        "infra1": "79417bba55404067",
        "infra2": "8a0a11c6194fc77",
    }
    assert format_id(cluster_id(ids.values())) == "cf18de4f2e6f696a"
    assert cluster_id(reversed(list(ids.values()))) == cluster_id(ids.values())


def test_a_member_added_at_runtime_hashes_the_time_and_no_token():
    """`etcdctl member add newbie --peer-urls=http://127.0.0.1:41240` at Unix time 1795328452 answered
    "Member d72f00d19de54aae added to cluster b7fe1a339b5bdf06"; the cluster ID does not change."""
    added = member_id(["http://127.0.0.1:41240"], "", now=1795328452)
    assert format_id(added) == "d72f00d19de54aae"
    assert member_id(["http://127.0.0.1:41240"], "", now=1795328452.999) == added
    assert member_id(["http://127.0.0.1:41240"], "", now=1795328453) != added
    founding = member_id(["http://127.0.0.1:41239"], "flotilla-test")
    assert format_id(cluster_id([founding])) == "b7fe1a339b5bdf06"


def test_format_id_is_unpadded_lower_case_hex():
    assert format_id(0x0123ABC) == "123abc"
    assert format_id(0) == "0"
    assert format_id(2**64 - 1) == "ffffffffffffffff"
    with pytest.raises(ValueError):
        format_id(2**64)
    with pytest.raises(ValueError):
        format_id(-1)


def test_parse_id_reads_what_format_id_writes():
    for i in (0, 1, 0x8E9E05C52164694D, 0x9288F5874DF0E01, 2**64 - 1):
        assert parse_id(format_id(i)) == i
    assert parse_id("8E9E05C52164694D") == 0x8E9E05C52164694D
    assert parse_id("0009") == 9


@pytest.mark.parametrize("text", ["", "0x10", "-1", "+1", " 1", "1 ", "1_0", "xyz", "10000000000000000", "١"])
def test_parse_id_refuses_what_etcd_refuses(text):
    with pytest.raises(ValueError):
        parse_id(text)

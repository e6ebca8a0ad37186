"""A 3-member cluster whose peers talk TLS (https:// peer URLs, --peer-cert-file, --peer-key-file,
--peer-trusted-ca-file, --peer-client-cert-auth), as etcd's secured-peer setup; Debian's etcd runs the same
flags beside it to show they mean the same thing."""

from __future__ import annotations

import shutil

import pytest
from processes import etcdctl, real_etcd_available, self_signed_certificate, start_cluster

pytestmark = [
    pytest.mark.skipif(not real_etcd_available(), reason="Debian's etcd/etcdctl not installed"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]


@pytest.mark.parametrize("kind", ["flotilla", "etcd"])
def test_members_replicate_over_tls_peer_links(tmp_path, kind):
    cert, key = self_signed_certificate(tmp_path, "peer")
    flags = [
        f"--peer-cert-file={cert}", f"--peer-key-file={key}", f"--peer-trusted-ca-file={cert}",
        "--peer-client-cert-auth",
    ]  # fmt: skip
    members = start_cluster(kind, tmp_path, 3, *flags, peer_scheme="https")
    try:
        put = etcdctl(members[0].address, "put", "secret", "kept")
        assert put.returncode == 0, put.stderr
        for member in members:
            got = etcdctl(member.address, "get", "secret", "--print-value-only")
            assert got.stdout == "kept\n", got.stderr
        listed = etcdctl(members[1].address, "member", "list")
        assert listed.stdout.count("https://127.0.0.1:") == 3
    finally:
        for member in members:
            member.kill()

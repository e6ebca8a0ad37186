"""Authentication with a user and password (etcd 3.4 only: Flotilla's member has no Auth service yet):
the token rides on every call and watch, a role limits the keys, and bad credentials are an AuthError."""

from __future__ import annotations

import pytest
from client_members import etcdctl, real_etcd_available, run, start_member

from flotilla.client import AuthError, EtcdClient, PermissionDenied

pytestmark = pytest.mark.skipif(not real_etcd_available(), reason="Debian's etcd is not installed")

SETUP = (
    ["user", "add", "root:rootpw"],
    ["user", "add", "bob:bobpw"],
    ["role", "add", "apps"],
    ["role", "grant-permission", "apps", "readwrite", "apps/", "--prefix=true"],
    ["user", "grant-role", "bob", "apps"],
    ["auth", "enable"],
)


def test_a_user_reads_writes_and_watches_its_keys_only(tmp_path):
    member = start_member("etcd", tmp_path)
    try:
        for args in SETUP:
            done = etcdctl(member.address, *args)
            assert done.returncode == 0, done.stderr

        async def body():
            async with EtcdClient([member.endpoint], username="bob", password="bobpw") as client:
                revision = await client.put("apps/web", "1")
                assert (await client.get("apps/web")).value == b"1"
                with pytest.raises(PermissionDenied):
                    await client.put("other", "1")
                async with client.watch_prefix("apps/", start_revision=revision) as watch:
                    response = await anext(watch)
                assert [e.kv.key for e in response.events] == [b"apps/web"]
            async with EtcdClient([member.endpoint], username="bob", password="wrong", timeout_s=2) as client:
                with pytest.raises(AuthError, match="invalid user ID or password"):
                    await client.get("apps/web")

        run(body())
    finally:
        member.kill()

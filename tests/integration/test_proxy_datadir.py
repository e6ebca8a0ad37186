"""What a data directory already is decides what `flotilla etcd` runs, as etcd 3.4: a directory holding
``proxy/`` restarts as a proxy without --proxy, one holding both ``member/`` and ``proxy/`` is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

from processes import free_port

PROXY_READY = "v2 proxy started listening on client requests"


def test_a_data_dir_with_member_and_proxy_is_refused(tmp_path):
    (tmp_path / "member").mkdir()
    (tmp_path / "proxy").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "flotilla", "etcd", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "invalid datadir. Both member and proxy directories exist." in result.stderr


def test_a_proxy_data_dir_restarts_as_a_proxy_without_the_flag(tmp_path):
    (tmp_path / "proxy").mkdir()
    (tmp_path / "proxy" / "cluster").write_text(json.dumps({"PeerURLs": [f"http://127.0.0.1:{free_port()}"]}))
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flotilla", "etcd", "--data-dir", str(tmp_path), "--listen-client-urls", url,
         "--advertise-client-urls", url],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        for line in proc.stderr:
            if PROXY_READY in line or time.monotonic() > deadline:
                break
        try:
            urllib.request.urlopen(f"{url}/v2/keys/", timeout=10)
            status = 200
        except urllib.error.HTTPError as error:
            status = error.code
        assert status == 503  # a proxy with no reachable member, not a member
    finally:
        proc.terminate()
        proc.wait(15)

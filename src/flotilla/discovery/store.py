"""The discovery service's own backing store: a single-member ``flotilla etcd`` with the v2 API, run as a
child process on free loopback ports, for when no ``--store-endpoint`` is given.

Layout of the service's data directory: ``member/`` is the member's data dir, ``store.log`` its log and
``ports.json`` the ports it listened on, which a restart takes again when they are free (so the member's
recorded URLs stay true).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from flotilla.ports import free_port

__all__ = ["StoreProcess", "StoreStartError"]

log = logging.getLogger("flotilla.discovery")

_READY_POLL_S = 0.1
_STOP_GRACE_S = 10.0


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the service dies, even by SIGKILL (Linux prctl), so a
    killed service leaves no store behind."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class StoreStartError(Exception):
    """The backing store did not start; the message ends with the tail of its log."""


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class StoreProcess:
    """``flotilla etcd --enable-v2=true`` in ``data_dir``; ``endpoint`` is its client URL once started.
    Use as ``async with``: entering waits until it answers ``/health``, leaving stops it (SIGTERM, then
    SIGKILL after a grace period)."""

    def __init__(self, data_dir: Path, *, start_timeout_s: float = 60.0) -> None:
        self.data_dir = Path(data_dir)
        self.endpoint = ""
        self._start_timeout_s = start_timeout_s
        self._proc: asyncio.subprocess.Process | None = None

    def _ports(self) -> tuple[int, int]:
        """The client and peer ports: the last run's when both are free, else new ones (recorded)."""
        record = self.data_dir / "ports.json"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            saved = json.loads(record.read_text())
            client, peer = int(saved["client"]), int(saved["peer"])
            if _port_is_free(client) and _port_is_free(peer):
                return client, peer
        client, peer = free_port(), free_port()
        while peer == client:
            peer = free_port()
        record.write_text(json.dumps({"client": client, "peer": peer}))
        return client, peer

    def command(self, client_port: int, peer_port: int) -> list[str]:
        client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        return [
            sys.executable, "-m", "flotilla.cli.main", "etcd",
            "--name", "discovery-store",
            "--data-dir", str(self.data_dir / "member"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"discovery-store={peer}",
            "--enable-v2=true",
        ]  # fmt: skip

    async def __aenter__(self) -> StoreProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        client_port, peer_port = self._ports()
        self.endpoint = f"http://127.0.0.1:{client_port}"
        with open(self.data_dir / "store.log", "ab") as log_file:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command(client_port, peer_port),
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )  # fmt: skip
        try:
            await self._wait_healthy()
        except BaseException:
            await self.stop()
            raise
        log.info("backing store %s started (pid %d, log %s)", self.endpoint, self._proc.pid,
                 self.data_dir / "store.log")  # fmt: skip
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _wait_healthy(self) -> None:
        assert self._proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                if self._proc.returncode is not None:
                    raise StoreStartError(f"the backing store exited with {self._proc.returncode}:\n"
                                          + self._log_tail())  # fmt: skip
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    async with http.get(f"{self.endpoint}/health") as response:
                        if response.status == 200:
                            return
                if loop.time() > deadline:
                    raise StoreStartError(f"the backing store did not become healthy within "
                                          f"{self._start_timeout_s}s:\n" + self._log_tail())  # fmt: skip
                await asyncio.sleep(_READY_POLL_S)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.data_dir / "store.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self) -> None:
        """Stop the store (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), _STOP_GRACE_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()

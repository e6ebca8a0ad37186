"""``flotilla etcd --proxy on|readonly``: etcd 3.4's v2 proxy — a member that stores nothing and forwards
client HTTP requests to the cluster.

It learns the cluster from peer URLs (``--initial-cluster``, or the discovery token's members, or what it
saved in ``<data-dir>/proxy/cluster`` on an earlier run), asks them for the members (``GET /members`` on the
peer port) and forwards each request to a member's client URL, streaming both ways (a v2 watch passes
through as it happens). A member that fails is skipped for ``--proxy-failure-wait``; the member list is
refreshed every ``--proxy-refresh-interval``. ``readonly`` answers anything but GET with 501, as etcd.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from flotilla.etcd.config import EtcdConfig, parse_initial_cluster

__all__ = ["ProxyEndpoints", "run_proxy"]

log = logging.getLogger("flotilla.etcd.proxy")

# Hop-by-hop headers (RFC 7230 6.1) are the proxy's own business, never forwarded.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in ("Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailers",
              "Transfer-Encoding", "Upgrade", "Content-Length", "Host")
)  # fmt: skip
_NO_ENDPOINTS = "proxy: zero endpoints currently available"


class ProxyEndpoints:
    """The cluster's client URLs, with the ones that failed recently set aside."""

    def __init__(self, peer_urls: list[str], failure_wait_s: float) -> None:
        self.peer_urls = peer_urls
        self.client_urls: list[str] = []
        self.failure_wait_s = failure_wait_s
        self._failed_until: dict[str, float] = {}
        self._next = 0

    async def refresh(self, session: aiohttp.ClientSession, timeout_s: float) -> None:
        """Ask the members (any that answers) for the member list; keep their client URLs."""
        for peer in self.peer_urls:
            try:
                timeout = aiohttp.ClientTimeout(total=timeout_s)
                async with session.get(f"{peer}/members", timeout=timeout) as resp:
                    members = await resp.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                log.debug("proxy: could not get the members from %s: %s", peer, error)
                continue
            urls = [u for m in members for u in (m.get("clientURLs") or [])]
            peers = [u for m in members for u in (m.get("peerURLs") or [])]
            if urls:
                if urls != self.client_urls:
                    log.info("proxy: using client URLs %s", urls)
                self.client_urls = urls
                self.peer_urls = peers or self.peer_urls
                return
        log.warning("proxy: none of %s answered for the member list", self.peer_urls)

    def available(self) -> list[str]:
        now = time.monotonic()
        urls = [u for u in self.client_urls if self._failed_until.get(u, 0) <= now]
        if not urls:
            return []
        self._next = (self._next + 1) % len(urls)
        return urls[self._next :] + urls[: self._next]

    def failed(self, url: str) -> None:
        log.warning("proxy: client %s failed; it is set aside for %.1fs", url, self.failure_wait_s)
        self._failed_until[url] = time.monotonic() + self.failure_wait_s


def _cluster_file(config: EtcdConfig) -> Path:
    return Path(config.data_dir) / "proxy" / "cluster"


async def _initial_peer_urls(config: EtcdConfig) -> list[str]:
    saved = _cluster_file(config)
    if saved.exists():
        # etcd: a proxy restarted from its data directory ignores the bootstrap flags.
        return list(json.loads(saved.read_text())["PeerURLs"])
    if config.discovery:
        from flotilla.discovery import get_cluster

        cluster = await get_cluster(config.discovery, proxy=config.discovery_proxy)
        members = parse_initial_cluster(cluster)
    else:
        members = parse_initial_cluster(config.initial_cluster)
    return sorted(u for urls in members.values() for u in urls)


def _save_peer_urls(config: EtcdConfig, peer_urls: list[str]) -> None:
    path = _cluster_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"PeerURLs": peer_urls}))
    tmp.replace(path)


def _make_app(
    config: EtcdConfig, endpoints: ProxyEndpoints, session: aiohttp.ClientSession
) -> web.Application:
    readonly = config.proxy == "readonly"
    dial_timeout = config.proxy_dial_timeout_ms / 1000 or None
    read_timeout = config.proxy_read_timeout_ms / 1000 or None

    async def forward(request: web.Request) -> web.StreamResponse:
        if readonly and request.method != "GET":
            return web.Response(status=501)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        forwarded_for = request.headers.get("X-Forwarded-For")
        client = request.remote or ""
        headers["X-Forwarded-For"] = f"{forwarded_for}, {client}" if forwarded_for else client
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=dial_timeout, sock_read=read_timeout)
        for url in endpoints.available():
            target = url.rstrip("/") + request.path_qs
            try:
                upstream = await session.request(
                    request.method, target, headers=headers, data=body or None, timeout=timeout,
                    allow_redirects=False,
                )  # fmt: skip
            except (aiohttp.ClientError, TimeoutError):
                endpoints.failed(url)
                continue
            async with upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in upstream.headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        response.headers.add(key, value)
                await response.prepare(request)
                try:
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
                except (aiohttp.ClientError, ConnectionResetError):
                    pass  # the member or the client went away mid-stream: end the response
                await response.write_eof()
                return response
        return web.Response(status=503, text=_NO_ENDPOINTS + "\n")

    app = web.Application(client_max_size=config.max_request_bytes + 512 * 1024)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def _serve(config: EtcdConfig, stop: asyncio.Event) -> None:
    peer_urls = await _initial_peer_urls(config)
    endpoints = ProxyEndpoints(peer_urls, config.proxy_failure_wait_ms / 1000)
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        await endpoints.refresh(session, max(config.proxy_dial_timeout_ms / 1000, 1.0))
        _save_peer_urls(config, endpoints.peer_urls)
        runner = web.AppRunner(_make_app(config, endpoints, session), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        for url in config.listen_client_urls:
            parts = urlsplit(url)
            await web.TCPSite(runner, parts.hostname or "127.0.0.1", parts.port or 2379).start()
            log.info("proxy: listening for client requests on %s", url)
        interval = max(config.proxy_refresh_interval_ms / 1000, 0.1)
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), interval)
                except TimeoutError:
                    await endpoints.refresh(session, max(config.proxy_dial_timeout_ms / 1000, 1.0))
                    _save_peer_urls(config, endpoints.peer_urls)
        finally:
            await runner.cleanup()


def run_proxy(config: EtcdConfig) -> int:
    """Run the proxy until SIGTERM/SIGINT; the process exit code."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await _serve(config, stop)

    try:
        asyncio.run(main())
    except OSError as error:
        log.critical("proxy: stopping: %s", error)
        return 1
    return 0

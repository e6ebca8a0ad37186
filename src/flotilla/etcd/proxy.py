"""``flotilla etcd --proxy on|readonly``: etcd 3.4's v2 proxy — a member that stores nothing and forwards
client HTTP requests to the cluster.

It learns the cluster from peer URLs (``--initial-cluster``, or the discovery token's members, or what it
saved in ``<data-dir>/proxy/cluster`` on an earlier run), asks them for the members (``GET /members`` on the
peer port) and forwards each request to a member's client URL, streaming both ways (a v2 watch passes
through as it happens). As etcd's ``httpproxy``:

- the members' client URLs are shuffled at each refresh (every ``--proxy-refresh-interval``; every second
  while none is known and the interval is etcd's default or longer) and a request goes to the first one
  available, so one client's requests keep reaching the same member between refreshes;
- a member that cannot be reached is set aside for ``--proxy-failure-wait`` and the next one is tried;
  none available: 503 ``httpproxy: zero endpoints currently available``; all tried and failed: 502;
- ``readonly`` answers anything but GET with an empty 501 (``/metrics`` excepted);
- the proxy itself answers ``/metrics`` (its ``etcd_proxy_*`` counters), ``/v2/config/local/proxy`` (the
  endpoints in use), CORS preflights, and Go's ServeMux redirect for unclean paths;
- ``--proxy-dial-timeout`` bounds connecting to a member, ``--proxy-read-timeout`` each wait for its data
  (0: none, for watches). ``--proxy-write-timeout`` is accepted but not applied: aiohttp has no per-write
  deadline, and a request is small and sent at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import signal
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import yarl
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from flotilla.etcd.config import EtcdConfig, parse_initial_cluster
from flotilla.etcd.goresponses import bad_request, method_not_allowed
from flotilla.etcd.v2form import clean_path

__all__ = ["ProxyDirector", "ProxyMetrics", "cluster_from_members", "run_proxy"]

# etcd's packages in its log lines: "etcdmain: proxy: using peer urls ..." and "proxy/httpproxy: ...".
_main_log = logging.getLogger("flotilla.etcd.etcdmain")
_log = logging.getLogger("flotilla.etcd.proxy/httpproxy")

# etcd's singleHopHeaders (those of Go's httputil.ReverseProxy), dropped both ways. Host and
# Content-Length are not in it: the client's Host goes through, and the length is the body's own.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in ("Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailers",
              "Transfer-Encoding", "Upgrade")
)  # fmt: skip
_CORS_HEADERS = (
    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"),
    ("Access-Control-Allow-Headers", "accept, content-type, authorization"),
)
_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")
# etcd's director: with a refresh interval of its default or longer, retry every second while no
# endpoint is known, so a proxy started before its cluster does not wait half a minute.
_DEFAULT_REFRESH_INTERVAL_S = 30.0
_EMPTY_REFRESH_INTERVAL_S = 1.0
# etcd's GetClusterFromRemotePeers gives each peer this long to answer.
_MEMBERS_TIMEOUT_S = 10.0


# ---------------------------------------------------------------------------------------------------------
# Where requests go


@dataclass
class ProxyDirector:
    """etcd's director: the cluster's client URLs in a shuffled order, each either available or set aside
    until ``failure_wait_s`` after its last failure. ``clock`` and ``rng`` are injectable for tests."""

    failure_wait_s: float
    rng: random.Random = field(default_factory=random.Random)
    clock: object = time.monotonic
    _urls: list[str] = field(default_factory=list)
    _unavailable_until: dict[str, float] = field(default_factory=dict)

    def replace(self, client_urls: list[str]) -> None:
        """A refresh's result: a new shuffled order, every URL available again (etcd makes new
        endpoints); an empty list (the members could not be asked) leaves no endpoint."""
        urls = list(client_urls)
        self.rng.shuffle(urls)
        self._urls = urls
        self._unavailable_until = {}

    def endpoints(self) -> list[str]:
        """The URLs to try for one request, in order: those not set aside."""
        now = self.clock()
        available = []
        for url in self._urls:
            until = self._unavailable_until.get(url)
            if until is not None and until <= now:
                del self._unavailable_until[url]
                _log.info("marked endpoint %s available, to retest connectivity", url)
                until = None
            if until is None:
                available.append(url)
        return available

    def failed(self, url: str) -> None:
        """``url`` could not be reached: set it aside for ``failure_wait_s``."""
        if url in self._unavailable_until or url not in self._urls:
            return
        self._unavailable_until[url] = self.clock() + self.failure_wait_s
        _log.info("marked endpoint %s unavailable", url)


def cluster_from_members(members: list[dict]) -> tuple[list[str], list[str]]:
    """The sorted client URLs and peer URLs of a peer port's ``/members`` answer (etcd's ClientURLs and
    PeerURLs of the cluster: every member's, without duplicates). A member not started yet has no client
    URL and adds none."""
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        raise ValueError("the member list is not a JSON array of members")
    clients = {u for m in members for u in (m.get("clientURLs") or [])}
    peers = {u for m in members for u in (m.get("peerURLs") or [])}
    return sorted(clients), sorted(peers)


# ---------------------------------------------------------------------------------------------------------
# The cluster: asked of the peers, saved in the data directory


class _Cluster:
    """The peer URLs the proxy asks for the member list, kept in ``<data-dir>/proxy/cluster`` (etcd's
    ``{"PeerURLs": [...]}``) so a restart needs no bootstrap flags."""

    def __init__(self, directory: Path, peer_urls: list[str], dial_timeout_s: float | None = None) -> None:
        self.file = directory / "cluster"
        self.peer_urls = peer_urls
        self.dial_timeout_s = dial_timeout_s

    async def client_urls(self, session: aiohttp.ClientSession, ssl_context) -> list[str]:
        """etcd's refresh: the client URLs of the first peer that lists the members (with a cluster ID);
        the peer URLs it lists are saved and asked next time. [] when no peer answers."""
        errors = []
        for peer in self.peer_urls:
            try:
                timeout = aiohttp.ClientTimeout(total=_MEMBERS_TIMEOUT_S, sock_connect=self.dial_timeout_s)
                async with session.get(f"{peer}/members", timeout=timeout, ssl=ssl_context) as resp:
                    int(resp.headers.get("X-Etcd-Cluster-ID", ""), 16)
                    clients, peers = cluster_from_members(json.loads(await resp.read()))
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                errors.append(f"{peer}: {error or type(error).__name__}")
                continue
            self._save(peers)
            if peers != self.peer_urls:
                _main_log.info("proxy: updated peer urls in cluster file from %s to %s",
                               _go_list(self.peer_urls), _go_list(peers))  # fmt: skip
            self.peer_urls = peers
            return clients
        _main_log.warning("proxy: could not retrieve cluster information from the given URLs (%s)",
                          "; ".join(errors))  # fmt: skip
        return []

    def _save(self, peer_urls: list[str]) -> None:
        backup = self.file.with_name(self.file.name + ".bak")
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "wb") as f:
                f.write(json.dumps({"PeerURLs": peer_urls}, separators=(",", ":")).encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(backup, self.file)
        except OSError as error:
            _main_log.warning("proxy: error on writing urls %s", error)


async def _initial_cluster(config: EtcdConfig) -> _Cluster:
    """etcd's startProxy: the saved cluster file wins over the bootstrap flags; else the discovery
    token's cluster, else ``--initial-cluster``."""
    directory = Path(config.data_dir) / "proxy"
    dial_timeout_s = config.proxy_dial_timeout_ms / 1000 or None
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    saved = directory / "cluster"
    if saved.exists():
        if config.discovery:
            _main_log.warning("discovery token ignored since the proxy has already been initialized. "
                              "Valid cluster file found at %s", json.dumps(str(saved)))  # fmt: skip
        peer_urls = list(json.loads(saved.read_text())["PeerURLs"])
        _main_log.info("proxy: using peer urls %s from cluster file %s", _go_list(peer_urls),
                       json.dumps(str(saved)))  # fmt: skip
        return _Cluster(directory, peer_urls, dial_timeout_s)
    if config.discovery:
        from flotilla.discovery import get_cluster

        members = parse_initial_cluster(await get_cluster(config.discovery, proxy=config.discovery_proxy))
    else:
        members = parse_initial_cluster(config.initial_cluster)
    peer_urls = sorted({u for urls in members.values() for u in urls})
    _main_log.info("proxy: using peer urls %s ", _go_list(peer_urls))
    return _Cluster(directory, peer_urls, dial_timeout_s)


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"  # Go's %v of a []string


class ProxyMetrics:
    """etcd's ``etcd_proxy_*`` metrics, served on the proxy's own ``/metrics``."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"  # the text format etcd serves

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._incoming = Counter("etcd_proxy_requests_total", "Counter requests incoming by method.",
                                 ["method"], registry=self.registry)  # fmt: skip
        self._handled = Counter("etcd_proxy_handled_total",
                                "Counter of requests fully handled (by authoratitave servers)",
                                ["method", "code"], registry=self.registry)  # fmt: skip
        self._dropped = Counter("etcd_proxy_dropped_total", "Counter of requests dropped on the proxy.",
                                ["method", "proxying_error"], registry=self.registry)  # fmt: skip
        self._duration = Histogram(
            "etcd_proxy_handling_duration_seconds",
            "Bucketed histogram of handling time of successful events (non-watches), by method "
            "(GET/PUT etc.).",
            ["method"], registry=self.registry, buckets=[0.0005 * 2**i for i in range(13)],
        )  # fmt: skip

    def incoming(self, method: str) -> None:
        self._incoming.labels(method).inc()

    def handled(self, method: str, status: int, duration_s: float) -> None:
        self._handled.labels(method, str(status)).inc()
        self._duration.labels(method).observe(duration_s)

    def dropped(self, method: str, reason: str) -> None:
        self._dropped.labels(method, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


# ---------------------------------------------------------------------------------------------------------
# The HTTP side


def _json_error(status: int, message: str) -> web.Response:
    """etcd's httptypes.HTTPError: ``{"message": ...}`` as application/json, no trailing newline."""
    body = json.dumps({"message": message}, separators=(",", ":"))
    return web.Response(status=status, body=body.encode(), headers={"Content-Type": "application/json"})


def _forwarded_for(request: web.BaseRequest) -> str:
    client = request.remote or ""
    prior = request.headers.getall("X-Forwarded-For", [])
    return ", ".join([*prior, client]) if prior else client


class _ProxyHandler:
    """One handler for every path, in the order of etcd's handler chain: Go's ServeMux (bad escapes,
    unclean paths, ``/metrics``), the read-only check, CORS (preflights answered here), then the
    proxy's own config endpoint or forwarding."""

    def __init__(self, config: EtcdConfig, director: ProxyDirector, session: aiohttp.ClientSession,
                 ssl_context, metrics: ProxyMetrics) -> None:  # fmt: skip
        self.readonly = config.proxy == "readonly"
        self.cors_origins = tuple(config.cors) or ("*",)
        self.director = director
        self.session = session
        self.ssl_context = ssl_context
        self.metrics = metrics
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=config.proxy_dial_timeout_ms / 1000 or None,
            # etcd's per-read deadline on the member connection; 0: none (watches wait for long).
            sock_read=config.proxy_read_timeout_ms / 1000 or None,
        )

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        if _BAD_ESCAPE.search(request.raw_path.split("?", 1)[0]):
            return bad_request()
        cleaned = clean_path(request.path)
        if cleaned != request.path:
            return _moved(request, cleaned)
        if request.path == "/metrics":
            return web.Response(
                body=self.metrics.render(), headers={"Content-Type": self.metrics.content_type}
            )
        if self.readonly and request.method != "GET":
            return web.Response(status=501)
        cors = self._cors(request)
        if request.method == "OPTIONS":
            return web.Response(status=200, headers=cors)
        if request.path == "/v2/config/local/proxy":
            response = self._config(request)
        else:
            response = await self._forward(request, cors)
        if not response.prepared:
            response.headers.extend(cors)
        return response

    def _cors(self, request: web.BaseRequest) -> CIMultiDict:
        headers = CIMultiDict()
        origin = request.headers.get("Origin", "")
        if "*" in self.cors_origins:
            headers.add("Access-Control-Allow-Origin", "*")
        elif origin in self.cors_origins:
            headers.add("Access-Control-Allow-Origin", origin)
        else:
            return headers
        headers.extend(_CORS_HEADERS)
        return headers

    def _config(self, request: web.BaseRequest) -> web.Response:
        if request.method != "GET":
            return method_not_allowed("GET")
        body = json.dumps({"endpoints": self.director.endpoints()}, separators=(",", ":")) + "\n"
        # Go sniffs the JSON it was not told the type of as text.
        return web.Response(text=body, content_type="text/plain")

    async def _forward(self, request: web.BaseRequest, cors) -> web.StreamResponse:
        method = request.method
        self.metrics.incoming(method)
        started = time.monotonic()
        body = await request.content.read()  # all of it, as etcd (no size limit of the proxy's own)
        headers = CIMultiDict(
            (k, v)
            for k, v in request.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
        )
        headers["X-Forwarded-For"] = _forwarded_for(request)
        endpoints = self.director.endpoints()
        if not endpoints:
            self.metrics.dropped(method, "zero_endpoints")
            _log.info("zero endpoints currently available")
            return _json_error(503, "httpproxy: zero endpoints currently available")
        for url in endpoints:
            try:
                upstream = await self.session.request(
                    method, yarl.URL(url.rstrip("/") + request.raw_path, encoded=True), headers=headers,
                    data=body if body else None, timeout=self.timeout, allow_redirects=False,
                    ssl=self.ssl_context, skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
                )  # fmt: skip
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                self.metrics.dropped(method, "failed_sending_request")
                _log.info("failed to direct request to %s: %s", url, error or type(error).__name__)
                self.director.failed(url)
                continue
            except asyncio.CancelledError:
                _log.info("client %s closed request prematurely", request.remote)
                raise
            async with upstream:
                self.metrics.handled(method, upstream.status, time.monotonic() - started)
                return await _relay(request, upstream, cors)
        self.metrics.dropped(method, "failed_getting_response")
        message = f"unable to get response from {len(endpoints)} endpoint(s)"
        _log.info("%s", message)
        return _json_error(502, f"httpproxy: {message}")


def _moved(request: web.BaseRequest, cleaned: str) -> web.Response:
    """Go's ServeMux redirect to the cleaned path."""
    location = cleaned + (f"?{request.query_string}" if request.query_string else "")
    response = web.Response(status=301, headers={"Location": location})
    if request.method in ("GET", "HEAD"):
        response.content_type = "text/html"
        response.text = f'<a href="{location}">Moved Permanently</a>.\n\n'
    return response


async def _relay(request: web.BaseRequest, upstream: aiohttp.ClientResponse, cors) -> web.StreamResponse:
    """The member's answer as it arrives: its status, its headers after the proxy's CORS ones (etcd adds
    both, so they appear twice), its body chunk by chunk (a v2 watch streams through)."""
    response = web.StreamResponse(status=upstream.status)
    response.headers.extend(cors)
    for key, value in upstream.headers.items():
        if key.lower() not in _HOP_BY_HOP:
            response.headers.add(key, value)
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except (aiohttp.ClientError, TimeoutError, ConnectionResetError):
        # The member went away mid-answer: the client must not take a cut body for a whole one.
        response.force_close()
        return response
    await response.write_eof()
    return response


# ---------------------------------------------------------------------------------------------------------
# The process


def _client_ssl_context(config: EtcdConfig) -> ssl.SSLContext | None:
    """etcd: the proxy talks to members with the client TLS settings, or the peer ones when none."""
    cert, key, ca = config.cert_file, config.key_file, config.trusted_ca_file
    if not (cert or ca or config.auto_tls):
        cert, key, ca = config.peer_cert_file, config.peer_key_file, config.peer_trusted_ca_file
    if not (cert or ca or config.auto_tls or config.peer_auto_tls):
        return None
    context = ssl.create_default_context(cafile=ca or None)
    if cert:
        context.load_cert_chain(cert, key or None)
    if config.auto_tls or config.peer_auto_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _server_ssl_context(config: EtcdConfig) -> ssl.SSLContext | None:
    if not config.cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=config.trusted_ca_file or None)
    context.load_cert_chain(config.cert_file, config.key_file or None)
    if config.client_cert_auth:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _refresh_forever(config: EtcdConfig, cluster: _Cluster, director: ProxyDirector,
                           session: aiohttp.ClientSession, ssl_context) -> None:  # fmt: skip
    """etcd's director loop: refresh every interval, every second while no endpoint is known (with an
    interval of etcd's default or longer); the first endpoints found are logged once."""
    interval_s = config.proxy_refresh_interval_ms / 1000
    announced = False
    while True:
        endpoints = director.endpoints()
        if endpoints and not announced:
            announced = True
            _log.info("endpoints found %s", "[" + " ".join(json.dumps(u) for u in endpoints) + "]")
        wait_s = interval_s
        if interval_s >= _DEFAULT_REFRESH_INTERVAL_S and not endpoints:
            wait_s = _EMPTY_REFRESH_INTERVAL_S
        await asyncio.sleep(max(wait_s, 0.01))
        director.replace(await cluster.client_urls(session, ssl_context))


async def _serve(config: EtcdConfig, stop: asyncio.Event) -> None:
    _main_log.info("proxy: this proxy supports v2 API only!")
    cluster = await _initial_cluster(config)
    director = ProxyDirector(config.proxy_failure_wait_ms / 1000)
    client_ssl = _client_ssl_context(config)
    # No cap on connections to a member: every waiting v2 watch holds one (etcd's transport has none).
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        director.replace(await cluster.client_urls(session, client_ssl))
        handler = _ProxyHandler(config, director, session, client_ssl, ProxyMetrics())
        server = web.Server(handler, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=0.5)
        await runner.setup()
        try:
            async with asyncio.TaskGroup() as tasks:
                refresher = tasks.create_task(
                    _refresh_forever(config, cluster, director, session, client_ssl)
                )
                await _listen(config, runner)
                await stop.wait()
                refresher.cancel()
        finally:
            await runner.cleanup()


async def _listen(config: EtcdConfig, runner: web.ServerRunner) -> None:
    server_ssl = _server_ssl_context(config)
    for url in config.listen_client_urls:
        parts = urlsplit(url)
        ssl_context = server_ssl if parts.scheme == "https" else None
        await web.TCPSite(
            runner, parts.hostname or "127.0.0.1", parts.port or 2379, ssl_context=ssl_context
        ).start()
        _main_log.info("v2 proxy started listening on client requests on %s", json.dumps(url))


def run_proxy(config: EtcdConfig) -> int:
    """Run the proxy until SIGTERM/SIGINT; the process exit code (1 when it cannot start: a port in use,
    an unreadable data directory or cluster file, a discovery failure)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await _serve(config, stop)

    try:
        asyncio.run(main())
    except Exception as error:  # noqa: BLE001 - a port in use, a discovery error...: say it, exit 1
        while isinstance(error, BaseExceptionGroup):  # the TaskGroup's wrapping says nothing
            error = error.exceptions[0]
        _main_log.critical("proxy: stopping: %s", error)
        return 1
    return 0

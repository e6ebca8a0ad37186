"""`flotilla discovery`: the public discovery service (as discovery.etcd.io) over an etcd-v2-compatible store.

Routes:
- ``GET|POST /new?size=N`` (size also as a form field; default 3): a new token — 32 hex characters from 16
  random bytes — with ``_etcd/registry/<token>/_config/size`` = N created in the store; 200 with the token
  URL ``<public URL>/<token>`` as text/plain. A size that is not a whole number of at least 1: 400.
- ``/<token>`` and ``/<token>/<path>``: the store's ``/v2/keys/_etcd/registry/<token>[/<path>]`` with the
  same method, query and form body; the answer's status, JSON and etcd headers (X-Etcd-Index, ...) come
  back unchanged, streamed (watches included). ``_config`` is read-only, and the token directory itself
  cannot be deleted (discovery.etcd.io's method rules). An idle watch ends after ``watch_timeout_s`` with
  an empty 200, which etcd's client takes as "watch again".
- ``GET /health``: 200 ``OK`` when the store answers a quorum read, else 503.
An unreachable store gives 503, which etcd's discovery client retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from flotilla.discovery.store import StoreProcess

__all__ = [
    "DEFAULT_SIZE",
    "REGISTRY_PATH",
    "ServiceSettings",
    "create_app",
    "parse_listen_addr",
    "parse_size",
    "run_service",
]

log = logging.getLogger("flotilla.discovery")

DEFAULT_SIZE = 3
REGISTRY_PATH = "/v2/keys/_etcd/registry"
_SHUTDOWN_GRACE_S = 2.0
_GO_ATOI = re.compile(r"[+-]?[0-9]+")
# Hop-by-hop and framing headers are the proxy's own; everything else (X-Etcd-*, X-Raft-*, Content-Type,
# CORS) passes through.
_NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "date", "server"}
)
_HOME = """flotilla discovery: etcd's discovery service.

  curl -w '\\n' 'http://THIS-HOST/new?size=3'      # a token URL for a cluster of 3
  etcd --discovery <token URL> ...                 # on each of the 3 members
"""


@dataclass(frozen=True)
class ServiceSettings:
    """``store_endpoint``: the v2 store's base URL. ``public_url``: the base of token URLs ("" — the
    scheme and Host the request came with)."""

    store_endpoint: str
    public_url: str = ""
    request_timeout_s: float = 10.0
    watch_timeout_s: float = 60.0


_SETTINGS = web.AppKey("settings", ServiceSettings)
_HTTP = web.AppKey("http", aiohttp.ClientSession)
_DEADLINES = web.AppKey("deadlines", set)  # the asyncio.Timeout of each proxied request in flight


def parse_size(text: str | None) -> int:
    """The ``size`` parameter of /new: absent or empty is the default; raises ValueError with the reason."""
    if text is None or text == "":
        return DEFAULT_SIZE
    if not _GO_ATOI.fullmatch(text):
        raise ValueError(f"invalid size {text!r}: the size must be a whole number of members")
    size = int(text)
    if size < 1:
        raise ValueError(f"invalid size {text!r}: a cluster needs at least 1 member")
    return size


def create_app(settings: ServiceSettings) -> web.Application:
    """The service's aiohttp application (its client session opens and closes with the app)."""
    app = web.Application()
    app[_SETTINGS] = settings
    app[_DEADLINES] = set()
    app.cleanup_ctx.append(_client_session)
    app.on_shutdown.append(_end_long_polls)
    app.router.add_get("/", _home)
    app.router.add_route("*", "/new", _new_token)
    app.router.add_get("/health", _health)
    # Token names stay within one safe path segment, so no request can leave the registry directory.
    app.router.add_route("*", r"/{token:[A-Za-z0-9][A-Za-z0-9_.-]*}", _proxy)
    app.router.add_route("*", r"/{token:[A-Za-z0-9][A-Za-z0-9_.-]*}/{rest:.*}", _proxy)
    return app


async def _client_session(app: web.Application):
    settings = app[_SETTINGS]
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.request_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as http:
        app[_HTTP] = http
        yield


async def _end_long_polls(app: web.Application) -> None:
    # Every proxied request times out now: a watch ends as an idle one does, with an empty body (etcd's
    # client then watches again), instead of holding the shutdown for the watch timeout.
    now = asyncio.get_running_loop().time()
    for deadline in app[_DEADLINES]:
        deadline.reschedule(now)


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text.rstrip("\n") + "\n", content_type="text/plain")


async def _home(request: web.Request) -> web.Response:
    return _text(200, _HOME)


async def _new_token(request: web.Request) -> web.Response:
    settings, http = request.app[_SETTINGS], request.app[_HTTP]
    text = request.query.get("size")
    if text is None and request.method == "POST":
        text = (await request.post()).get("size")
    try:
        size = parse_size(text if isinstance(text, str) else None)
    except ValueError as error:
        return _text(400, str(error))
    token = secrets.token_hex(16)
    url = f"{settings.store_endpoint.rstrip('/')}{REGISTRY_PATH}/{token}/_config/size"
    try:
        async with http.put(
            url, params={"prevExist": "false"}, data={"value": str(size)},
            timeout=aiohttp.ClientTimeout(total=settings.request_timeout_s),
        ) as response:  # fmt: skip
            body = await response.text()
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        log.warning("new token: the store at %s is unreachable: %r", settings.store_endpoint, error)
        return _text(503, "unable to generate token: the backing store is unavailable")
    if response.status != 201:
        log.warning("new token: the store answered %d %s", response.status, body.strip())
        return _text(503, f"unable to generate token: the backing store answered {response.status}")
    public = settings.public_url or f"{request.scheme}://{request.host}"
    log.info("new cluster created %s (size %d)", token, size)
    return web.Response(text=f"{public.rstrip('/')}/{token}", content_type="text/plain")


async def _health(request: web.Request) -> web.Response:
    settings, http = request.app[_SETTINGS], request.app[_HTTP]
    url = f"{settings.store_endpoint.rstrip('/')}{REGISTRY_PATH}"
    try:
        async with http.get(
            url, params={"quorum": "true"}, timeout=aiohttp.ClientTimeout(total=settings.request_timeout_s)
        ) as response:
            await response.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        return _text(503, f"health failed: the backing store is unreachable ({error!r})")
    # 404: no token yet, but the store answered a quorum read.
    if response.status not in (200, 404):
        return _text(503, f"health failed: the backing store answered {response.status}")
    return web.Response(text="OK", content_type="text/plain")


def _allowed_methods(segments: list[str]) -> tuple[str, ...]:
    """discovery.etcd.io's rules: the size is read-only; the token directory can be read or written but
    not deleted; registrations can also be deleted."""
    if segments and segments[0] == "_config":
        return ("GET", "HEAD")
    if not segments or segments == [""]:
        return ("GET", "HEAD", "PUT")
    return ("GET", "HEAD", "PUT", "DELETE")


async def _proxy(request: web.Request) -> web.StreamResponse:
    settings = request.app[_SETTINGS]
    rest = request.match_info.get("rest", "")
    segments = rest.split("/") if rest else []
    if any(segment in (".", "..") for segment in segments):
        return _text(400, "dot segments are not allowed in a discovery path")
    allowed = _allowed_methods(segments)
    if request.method not in allowed:
        response = _text(405, "Method Not Allowed")
        response.headers["Allow"] = ", ".join(allowed)
        return response
    watch = "wait" in request.query
    deadlines = request.app[_DEADLINES]
    started: list[web.StreamResponse] = []
    try:
        async with asyncio.timeout(settings.watch_timeout_s if watch else settings.request_timeout_s) as d:
            deadlines.add(d)
            try:
                return await _relay(request, started)
            finally:
                deadlines.discard(d)
    except TimeoutError:
        if started:
            # A watch whose headers went out ends with the body so far (empty: "watch again").
            with contextlib.suppress(ConnectionError):
                await started[0].write_eof()
            return started[0]
        if watch:
            return web.Response(status=200)  # discovery.etcd.io's answer to an idle watch
        return _text(504, "the backing store did not answer in time")


async def _relay(request: web.Request, started: list[web.StreamResponse]) -> web.StreamResponse:
    """Send the request on to the store and stream its answer back; the response, once its headers are
    sent, is also put in ``started`` for the caller to end if time runs out."""
    settings, http = request.app[_SETTINGS], request.app[_HTTP]
    # raw_path keeps the client's own encoding of the path and query for the store to decode.
    target = URL(settings.store_endpoint.rstrip("/") + REGISTRY_PATH + request.raw_path, encoded=True)
    headers = {"Content-Type": request.headers["Content-Type"]} if "Content-Type" in request.headers else {}
    body = await request.read()
    try:
        async with http.request(request.method, target, data=body or None, headers=headers) as upstream:
            out = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in _NOT_FORWARDED:
                    out.headers.add(name, value)
            await out.prepare(request)
            started.append(out)
            async for chunk in upstream.content.iter_any():
                await out.write(chunk)
    except (aiohttp.ClientError, OSError) as error:
        if not started:
            log.warning("proxy %s %s: the store is unreachable: %r", request.method, request.path, error)
            return _text(503, "the backing store is unavailable")
    with contextlib.suppress(ConnectionError):
        await started[0].write_eof()
    return started[0]


def parse_listen_addr(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ValueError(f"invalid listen address {text!r}: want host:port, such as 127.0.0.1:8087")
    return host.strip("[]"), int(port)


async def run_service(
    *,
    listen_addr: str,
    public_url: str = "",
    store_endpoint: str = "",
    data_dir: Path | None = None,
    on_listening: Callable[[str], None] = lambda url: None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set). Without ``store_endpoint``, a Flotilla store runs in
    ``data_dir`` for as long as the service does. ``on_listening`` gets the bound URL once it accepts."""
    host, port = parse_listen_addr(listen_addr)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        if not store_endpoint:
            store = await stack.enter_async_context(StoreProcess(data_dir or Path("default.discovery")))
            store_endpoint = store.endpoint
        # A member that gives up on a watch disconnects: cancel its handler, and with it the store's
        # watch, rather than hold both for the watch's full minute (also at shutdown).
        runner = web.AppRunner(
            create_app(ServiceSettings(store_endpoint, public_url)),
            access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_GRACE_S,
        )  # fmt: skip
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
            stack.callback(loop.remove_signal_handler, signum)
        on_listening(f"http://{shown_host}:{bound_port}")
        log.info("serving discovery at http://%s:%d over the store at %s", shown_host, bound_port,
                 store_endpoint)  # fmt: skip
        await stop.wait()

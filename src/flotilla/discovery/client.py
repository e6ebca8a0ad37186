"""The member side of etcd's discovery protocol (etcd 3.4's v2discovery), spoken to any service that
serves a discovery token as a v2 keys directory (``flotilla discovery``, discovery.etcd.io, or an etcd
with the v2 API and the token as a directory path).

A discovery URL ``http://host:port/<token>`` names a directory: ``<token>/_config/size`` holds N, and each
founding member creates ``<token>/<member ID in hex>`` = ``name=peerURL[,name=peerURL2]``. The first N
registrations by createdIndex are the cluster. Requests are etcd's v2 client's: a GET of the size key, a
GET of the directory, a create (``PUT ?prevExist=false``, form ``value=``) and recursive watches
(``GET ?wait=true&waitIndex=I&recursive=true``).

Connection failures and 5xx answers are retried with a doubling backoff (as etcd: 2^k seconds, k capped at
8) and at most ``max_retries`` times over the whole call, then :class:`TooManyRetriesError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp

from flotilla.discovery.errors import (
    BadDiscoveryEndpointError,
    BadSizeKeyError,
    ClusterFullError,
    DiscoveryError,
    DiscoveryTimeoutError,
    DuplicateIdError,
    DuplicateNameError,
    InvalidUrlError,
    SizeNotFoundError,
    TooManyRetriesError,
)

__all__ = ["create_token", "get_cluster", "join_cluster", "registration_value"]

log = logging.getLogger("flotilla.discovery")

_REQUEST_TIMEOUT_S = 5.0  # etcd's v2 client DefaultRequestTimeout
# A watch is a long poll: services end idle ones themselves (discovery.etcd.io after a minute, answering
# 200 with no body); this bound only catches a service that never answers.
_WATCH_POLL_TIMEOUT_S = 300.0
_MAX_BACKOFF_EXPONENT = 8  # etcd's maxExpoentialRetries: the wait stops doubling at 2^8 units
_DEFAULT_MAX_RETRIES = 10
_GO_ATOI = re.compile(r"[+-]?[0-9]+")
_KEY_NOT_FOUND, _NODE_EXIST, _EVENT_INDEX_CLEARED = 100, 105, 401
_URL_SCHEMES = ("http", "https", "unix", "unixs")


@dataclass(frozen=True)
class _Node:
    """One registration: ``name`` is the key's last segment (the member ID in hex)."""

    name: str
    value: str
    created_index: int


@dataclass(frozen=True)
class _ClusterState:
    """The registrations sorted by createdIndex, the wanted size and the store index they were read at."""

    nodes: tuple[_Node, ...]
    size: int
    index: int


class _Unreachable(Exception):
    """The service did not answer as a live etcd endpoint (refused, timed out, 5xx): worth a retry."""


def registration_value(name: str, peer_urls: Sequence[str]) -> str:
    """What a member registers: ``name=url`` per peer URL, sorted (etcd's URLsMap.String())."""
    return ",".join(sorted(f"{name}={url}" for url in peer_urls))


def _etcd_error_text(doc: Mapping) -> str:
    """etcd's v2 client error text: ``code: message (cause) [index]``."""
    return f"{doc.get('errorCode')}: {doc.get('message')} ({doc.get('cause', '')}) [{doc.get('index', 0)}]"


def _decode(body: bytes, what: str) -> dict:
    """The JSON object of an answer; anything else means the URL is not a discovery endpoint."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise BadDiscoveryEndpointError(detail=f"{what}: not a v2 keys answer: {body[:200]!r}")
    return doc


class _Session:
    """One discovery URL's endpoint, token and retry budget; use as ``async with``."""

    def __init__(self, discovery_url: str, proxy: str, max_retries: int, backoff_s: float) -> None:
        parts = urlsplit(discovery_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadDiscoveryEndpointError(detail=f"not an http(s) URL: {discovery_url!r}")
        self.url = discovery_url
        self._base = f"{parts.scheme}://{parts.netloc}"
        self.token_path = "/" + parts.path.strip("/")
        # etcd's newProxyFunc: a proxy without an http(s) scheme is taken as host:port.
        self._proxy = proxy if not proxy or proxy.startswith("http") else f"http://{proxy}"
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._retries = 0
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> _Session:
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._http is not None
        await self._http.close()

    def key(self, *segments: str) -> str:
        return "/".join([self.token_path.rstrip("/"), *segments])

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        timeout_s: float = _REQUEST_TIMEOUT_S,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request: status, headers and body; raises _Unreachable for failures worth a retry."""
        assert self._http is not None
        url = self._base + path
        try:
            async with self._http.request(
                method, url, params=params, data=form, proxy=self._proxy or None,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:  # fmt: skip
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise _Unreachable(f"{method} {url}: {error!r}") from error
        if response.status >= 500:
            # etcd's client counts a 5xx as a failed endpoint (no leader, store down), not an answer.
            raise _Unreachable(f"{method} {url}: {response.status} {body[:200]!r}")
        return response.status, response.headers, body

    async def call_retrying(self, step: str, method: str, path: str, **kwargs) -> tuple:
        """:meth:`call`, retried after a backoff while the budget lasts."""
        while True:
            try:
                return await self.call(method, path, **kwargs)
            except _Unreachable as error:
                await self.backoff(step, error)

    async def backoff(self, step: str, error: Exception) -> None:
        """Sleep before the next retry (2^k units, k capped), or give up when the budget is spent."""
        self._retries += 1
        if self._retries > self._max_retries:
            raise TooManyRetriesError(detail=f"{step}: {error}")
        wait_s = self._backoff_s * 2 ** min(self._retries, _MAX_BACKOFF_EXPONENT)
        log.info("%s: error connecting to %s, retrying in %.3gs (%s)", step, self.url, wait_s, error)
        await asyncio.sleep(wait_s)

    async def read_cluster(self) -> _ClusterState:
        """The size and the registrations sorted by createdIndex (etcd's checkCluster, less the check)."""
        size = await self._read_size()
        status, headers, body = await self.call_retrying("cluster status check", "GET", self.key())
        doc = _decode(body, f"GET {self.url}")
        if status != 200:
            raise DiscoveryError(_etcd_error_text(doc), detail=self.url)
        children = doc.get("node", {}).get("nodes") or []
        nodes = sorted(
            (
                _Node(str(n.get("key", "")).rsplit("/", 1)[-1], str(n.get("value", "")),
                      int(n.get("createdIndex", 0)))
                for n in children
            ),
            key=lambda n: n.created_index,
        )  # fmt: skip
        nodes = [n for n in nodes if n.name != "_config"]
        index = int(headers.get("X-Etcd-Index", "0") or 0)
        return _ClusterState(tuple(nodes), size, index)

    async def check_cluster(self, self_name: str | None) -> _ClusterState:
        """:meth:`read_cluster`; ClusterFullError when N others registered before ``self_name`` (None:
        an observer, never refused)."""
        state = await self.read_cluster()
        first = [n.name for n in state.nodes[: state.size]]
        if self_name is not None and len(state.nodes) >= state.size and self_name not in first:
            raise ClusterFullError(detail=f"{len(state.nodes)} registered, size {state.size}: {self.url}")
        return state

    async def _read_size(self) -> int:
        path = self.key("_config", "size")
        status, _, body = await self.call_retrying("cluster status check", "GET", path)
        doc = _decode(body, f"GET {self._base}{path}")
        if status == 404 and doc.get("errorCode") == _KEY_NOT_FOUND:
            raise SizeNotFoundError(detail=f"no {path} at {self._base}: is the token right?")
        if status != 200:
            raise DiscoveryError(_etcd_error_text(doc), detail=self.url)
        value = doc.get("node", {}).get("value")
        if not isinstance(value, str) or not _GO_ATOI.fullmatch(value):
            raise BadSizeKeyError(detail=f"{path} is {value!r}")
        return int(value)

    async def read_value(self, path: str) -> str | None:
        status, _, body = await self.call_retrying("registration", "GET", path)
        doc = _decode(body, f"GET {self._base}{path}")
        return doc.get("node", {}).get("value") if status == 200 else None

    async def wait_change(self, after_index: int) -> None:
        """Return once the token's directory changes after ``after_index`` — or the service ends the long
        poll, or the event history moved past it: the caller reads the directory again either way."""
        params = {"wait": "true", "waitIndex": str(after_index + 1), "recursive": "true"}
        try:
            status, _, body = await self.call(
                "GET", self.key(), params=params, timeout_s=_WATCH_POLL_TIMEOUT_S
            )
        except _Unreachable as error:
            await self.backoff("waiting for other nodes", error)
            return
        if status == 200 and not body.strip():
            return
        doc = _decode(body, f"watch {self.url}")
        if status != 200 and doc.get("errorCode") != _EVENT_INDEX_CLEARED:
            raise DiscoveryError(_etcd_error_text(doc), detail=self.url)


async def _register(session: _Session, self_name: str, value: str) -> None:
    """Create this member's key. Found already with the same value: this member registered before a
    restart, and goes on; with another value: another member has this ID."""
    path = session.key(self_name)
    status, _, body = await session.call_retrying(
        "registration", "PUT", path, params={"prevExist": "false"}, form={"value": value}
    )
    if status in (200, 201):
        return
    doc = _decode(body, f"PUT {session.url}/{self_name}")
    if doc.get("errorCode") != _NODE_EXIST:
        raise DiscoveryError(_etcd_error_text(doc), detail=session.url)
    existing = await session.read_value(path)
    if existing != value:
        raise DuplicateIdError(detail=f"{self_name} is registered as {existing!r}, not {value!r}")
    log.info("found self %s registered before, with the same peer URLs", self_name)


async def _wait_nodes(session: _Session, self_name: str | None, state: _ClusterState) -> tuple[_Node, ...]:
    """Wait until ``size`` members are registered; the first ``size`` of them."""
    for node in state.nodes[: state.size]:
        log.info("found %s %s in the cluster", "self" if node.name == self_name else "peer", node.name)
    while len(state.nodes) < state.size:
        log.info("found %d peer(s), waiting for %d more", len(state.nodes), state.size - len(state.nodes))
        await session.wait_change(state.index)
        state = await session.check_cluster(self_name)
    log.info("found %d needed peer(s)", state.size)
    return state.nodes[: state.size]


def _nodes_to_cluster(nodes: Sequence[_Node], size: int) -> str:
    """The initial cluster ``name=url,...``; InvalidUrlError or DuplicateNameError as etcd checks it."""
    joined = ",".join(n.value for n in nodes)
    names = set()
    for pair in joined.split(","):
        name, sep, url = pair.partition("=")
        if not sep or not _is_peer_url(url):
            raise InvalidUrlError(detail=f"{pair!r} in {joined!r}")
        names.add(name)
    if len(names) != size:
        raise DuplicateNameError(detail=joined)
    return joined


def _is_peer_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme in ("unix", "unixs"):
        return bool(parts.netloc)
    has_host_and_port = bool(parts.hostname) and port is not None
    return parts.scheme in _URL_SCHEMES and has_host_and_port and parts.path in ("", "/")


async def _bounded(coroutine, timeout_s: float | None, url: str):
    try:
        async with asyncio.timeout(timeout_s):
            return await coroutine
    except TimeoutError:
        raise DiscoveryTimeoutError(detail=f"no initial cluster from {url} within {timeout_s}s") from None


async def join_cluster(
    discovery_url: str,
    member_id: int,
    name: str,
    peer_urls: Sequence[str],
    *,
    timeout_s: float | None = None,
    proxy: str = "",
    max_retries: int = _DEFAULT_MAX_RETRIES,
    backoff_s: float = 1.0,
) -> str:
    """Register member ``member_id`` (``name`` at ``peer_urls``) under ``discovery_url`` and wait until the
    token's size is reached; return the initial cluster ``name1=url1,name2=url2,...`` of the first N
    registrations (by createdIndex), the same string for every member.

    A member that finds its ID registered with the same value (it registered, then restarted before its
    WAL existed) goes on waiting where etcd 3.4 stops with "found duplicate id"; a registration lost to a
    dropped answer is retried safely the same way.

    Raises ClusterFullError when N other members registered first (checked before registering, so a full
    cluster is not written to), DuplicateIdError when the ID is registered with other peer URLs, and the
    other :class:`DiscoveryError` subclasses. ``timeout_s`` bounds the whole call (None: wait for the
    other members as long as it takes, as etcd); ``proxy`` is an HTTP proxy for the requests;
    ``max_retries`` and ``backoff_s`` (the unit of the doubling wait) bound the retries.
    """
    self_name = format(member_id, "x")
    value = registration_value(name, peer_urls)

    async def join() -> str:
        async with _Session(discovery_url, proxy, max_retries, backoff_s) as session:
            # Fast path (etcd): a full cluster refuses before anything is written.
            await session.check_cluster(self_name)
            await _register(session, self_name, value)
            state = await session.check_cluster(self_name)
            nodes = await _wait_nodes(session, self_name, state)
            return _nodes_to_cluster(nodes, state.size)

    return await _bounded(join(), timeout_s, discovery_url)


async def get_cluster(
    discovery_url: str,
    *,
    timeout_s: float | None = None,
    proxy: str = "",
    max_retries: int = _DEFAULT_MAX_RETRIES,
    backoff_s: float = 1.0,
) -> str:
    """The initial cluster a token produced (etcd's GetCluster, used by a proxy that found the cluster
    full): the first N registrations, waiting for them if fewer are registered yet."""

    async def get() -> str:
        async with _Session(discovery_url, proxy, max_retries, backoff_s) as session:
            state = await session.check_cluster(None)
            nodes = await _wait_nodes(session, None, state)
            return _nodes_to_cluster(nodes, state.size)

    return await _bounded(get(), timeout_s, discovery_url)


async def create_token(service_url: str, size: int = 3, *, timeout_s: float = 10.0) -> str:
    """Ask a discovery service (``GET <service_url>/new?size=N``) for a new token; its URL."""
    url = service_url.rstrip("/") + "/new"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
            async with http.get(url, params={"size": str(size)}) as response:
                body = (await response.text()).strip()
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise DiscoveryError(f"discovery: cannot reach {url}: {error!r}") from error
    if response.status != 200:
        raise DiscoveryError(f"discovery: {url} refused a token of size {size}: {response.status} {body}")
    return body

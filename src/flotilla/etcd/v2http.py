"""etcd 3.4's v2 HTTP API on the client port (with ``--enable-v2``): ``/v2/keys``, ``/v2/stats/*``,
``/v2/members``, ``/v2/machines`` — same JSON, status codes, headers and error codes as etcd.

Also the two things etcd wraps around its whole client mux, v3 gateway included: CORS headers on every
response (an OPTIONS request is answered 200 at once), and Go's ServeMux path cleaning (``/v2/keys/a//b``
is a 301 to ``/v2/keys/a/b``).

Writes and ``quorum=true`` reads go through raft (``EtcdServer.v2_propose`` / ``read_barrier``); plain
reads and watches are served from this member's v2 tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

from aiohttp import web

from flotilla.etcd import errors
from flotilla.etcd.goresponses import bad_request, method_not_allowed, not_found
from flotilla.etcd.listener import client_gone
from flotilla.etcd.server import EtcdServer
from flotilla.etcd.v2form import GoFormError, clean_path, parse_form, parse_key_request
from flotilla.etcd.v2members import MembersHandler
from flotilla.gotext import go_duration, go_json, rfc3339nano
from flotilla.raft import Role
from flotilla.v2store import ErrorCode, Event, V2Error

__all__ = ["add_v2_routes", "cors_and_clean_path_middleware"]

KEYS_PREFIX = "/v2/keys"
_KEY_METHODS = ("HEAD", "GET", "PUT", "POST", "DELETE")
_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")
_STATE_NAMES = {Role.LEADER: "StateLeader", Role.CANDIDATE: "StateCandidate"}
_CORS_HEADERS = {
    "Access-Control-Allow-Headers": "accept, content-type, authorization",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS, PUT, DELETE",
}


def cors_and_clean_path_middleware(cors_origins: tuple[str, ...] = ("*",)):
    """etcd's CORS handler and ServeMux redirect, around every route of the client port."""
    allow_any = "*" in cors_origins

    def cors(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin", "")
        if allow_any:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin in cors_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
        else:
            return
        response.headers.update(_CORS_HEADERS)

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        if response.status != 400 or response.headers.get("Connection") != "close":
            cors(request, response)  # (Go's server refuses a malformed request before any handler)

    @web.middleware
    async def middleware(request: web.Request, handler):
        if _BAD_ESCAPE.search(request.raw_path.split("?", 1)[0]):
            return bad_request()
        if request.method == "OPTIONS":
            return web.Response(status=200)
        if request.match_info.http_exception is not None:
            if isinstance(request.match_info.http_exception, web.HTTPNotFound):
                return not_found()
        cleaned = clean_path(request.path)
        if cleaned != request.path:
            location = cleaned + (f"?{request.query_string}" if request.query_string else "")
            response = web.Response(status=301, headers={"Location": location})
            if request.method in ("GET", "HEAD"):
                response.content_type = "text/html"
                response.text = f'<a href="{location}">Moved Permanently</a>.\n\n'
            return response
        return await handler(request)

    middleware.on_prepare = on_prepare
    return middleware


def _json_response(body, status: int = 200, headers: dict | None = None) -> web.Response:
    body_bytes = (go_json(body) + "\n").encode()  # Go's json.Encoder ends each value with a newline
    headers = {**(headers or {}), "Content-Type": "application/json"}  # etcd names no charset
    return web.Response(body=body_bytes, status=status, headers=headers)


def _key_error(error: V2Error, headers: dict) -> web.Response:
    headers["X-Etcd-Index"] = str(error.index)
    return _json_response(error.to_json(), error.status, headers)


def _server_error(error: Exception) -> V2Error:
    # etcd answers a failed proposal (timeout, no leader, stopping) as a raft internal error.
    message = error.message if isinstance(error, errors.EtcdError) else str(error)
    return V2Error(ErrorCode.RAFT_INTERNAL, message, 0)


class _V2Handlers:
    def __init__(self, server: EtcdServer) -> None:
        self.server = server
        self._closing = False
        self._open_watches: set = set()  # the wake() of every running watch

    async def on_shutdown(self, app: web.Application) -> None:
        """End every watch: a stopping HTTP server waits for running handlers (aiohttp: minutes), and
        etcd closes its watches when it stops."""
        self._closing = True
        for wake in list(self._open_watches):
            wake()

    @property
    def cluster_id_hex(self) -> str:
        return f"{self.server.cluster_id:x}"

    # --- /v2/keys ------------------------------------------------------------------------------
    async def keys(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        if method not in _KEY_METHODS:
            return method_not_allowed(",".join(_KEY_METHODS))
        headers = {"X-Etcd-Cluster-Id": self.cluster_id_hex}
        body = await request.read() if method in ("POST", "PUT") else b""
        try:
            form = parse_form(method, request.query_string, request.headers.get("Content-Type"), body)
        except GoFormError as error:
            return _key_error(V2Error(ErrorCode.INVALID_FORM, str(error), 0), headers)
        try:
            parsed = parse_key_request(method, request.path[len(KEYS_PREFIX) :], form, time.time_ns())
        except V2Error as error:
            return _key_error(error, headers)
        r = parsed.request
        store = self.server.v2store
        # etcd 3.4 checks v2 auth on every keys request by reading /2/enabled from the v2 store, a get
        # that fails while auth was never enabled: /v2/stats/store counts it, and so do we.
        store.stats.gets_fail += 1
        try:
            if method in ("GET", "HEAD") and r.Quorum:
                await self.server.read_barrier()
                event = store.get(r.Path, recursive=r.Recursive, sorted=r.Sorted, now_ns=time.time_ns())
            elif method == "GET" and r.Wait:
                return await self._watch(request, r, headers)
            elif method in ("GET", "HEAD"):
                event = store.get(r.Path, recursive=r.Recursive, sorted=r.Sorted, now_ns=time.time_ns())
            else:
                event = await self.server.v2_propose(r)
        except V2Error as error:
            return _key_error(error, headers)
        except errors.EtcdError as error:
            return _key_error(_server_error(error), headers)
        return self._event_response(event, parsed.no_value_on_success, headers)

    def _event_response(self, event: Event, no_value_on_success: bool, headers: dict) -> web.Response:
        headers["X-Etcd-Index"] = str(event.etcd_index)
        headers["X-Raft-Index"] = str(self.server.committed_index())
        headers["X-Raft-Term"] = str(self.server.raft.term)
        created = event.action == "create" or (event.action == "set" and event.prev_node is None)
        body = event.to_json()
        if no_value_on_success and event.action in ("set", "compareAndSwap", "create", "update"):
            body = {"action": event.action}
        return _json_response(body, 201 if created else 200, headers)

    _last_event: Event | None = None
    _last_encoded = b""

    def _encoded(self, event: Event) -> bytes:
        # Every watcher of a key is handed the same event object in turn: encode it once for all of them.
        if event is not self._last_event:
            self._last_event, self._last_encoded = event, (go_json(event.to_json()) + "\n").encode()
        return self._last_encoded

    async def _watch(self, request: web.Request, r, headers: dict) -> web.StreamResponse:
        store = self.server.v2store
        loop = asyncio.get_running_loop()
        start_index = store.index
        watcher = store.watch(r.Path, recursive=r.Recursive, stream=r.Stream, since_index=r.Since)
        # etcd: a stream that starts from the history gets that one event and stays open, receiving
        # nothing more, until the client leaves (the core hands it over already removed).
        held_open = r.Stream and watcher.removed
        waiter: asyncio.Future | None = None

        def wake_now() -> None:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        def wake() -> None:  # an event arrived, the watcher was dropped, or the client left
            # One loop hop later: the write that made the event (applied in the same pass) answers
            # its own client first instead of after every watcher of the key.
            loop.call_soon(wake_now)

        watcher.on_event = wake
        gone = client_gone(request.transport)
        gone.add_callback(wake)
        self._open_watches.add(wake)
        try:
            headers["X-Etcd-Index"] = str(start_index)
            headers["X-Raft-Index"] = str(self.server.committed_index())
            headers["X-Raft-Term"] = str(self.server.raft.term)
            response = web.StreamResponse(status=200, headers=headers)
            response.content_type = "application/json"
            await response.prepare(request)  # headers go out at once: clients long-poll
            while True:
                if watcher.pending:
                    event = watcher.pending.popleft()
                    if not r.Stream:
                        await response.write_eof(self._encoded(event))  # event and end in one send
                        return response
                    await response.write(self._encoded(event))
                    continue
                if gone.is_set() or self._closing:
                    return response  # the client left (Go's CloseNotify) or the member stops
                if watcher.removed and not held_open:
                    return response  # dropped (a snapshot recovery, a full buffer): end the response
                waiter = loop.create_future()
                await waiter
        finally:
            self._open_watches.discard(wake)
            gone.remove_callback(wake)
            with contextlib.suppress(Exception):
                store.unwatch(watcher)

    # --- /v2/stats ------------------------------------------------------------------------------
    async def stats_self(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            return method_not_allowed("GET")
        s = self.server
        leader = s.leader_id()
        state = _STATE_NAMES.get(s.role, "StateFollower")
        body = {
            "name": s.settings.name,
            "id": f"{s.member_id:x}",
            "state": state,
            "startTime": rfc3339nano(int(s.started_at * 1e9)),
            "leaderInfo": {
                "leader": f"{leader:x}" if leader else "",
                "uptime": go_duration(time.time() - s.leader_since) if leader else "",
                "startTime": rfc3339nano(int(s.leader_since * 1e9)) if leader else "",
            },
            "recvAppendRequestCnt": 0,
            "sendAppendRequestCnt": 0,
        }
        return _json_response(body)

    async def stats_leader(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            return method_not_allowed("GET")
        s = self.server
        if not s.is_leader():
            return _json_response({"message": "not current leader"}, 403)
        followers = {f"{m:x}": _follower_stats() for m in s.members if m != s.member_id}
        return _json_response({"leader": f"{s.member_id:x}", "followers": followers})

    async def stats_store(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            return method_not_allowed("GET")
        store = self.server.v2store
        return _json_response(store.stats.to_json(store.watcher_count))

    # --- /v2/machines ------------------------------------------------------------------------------
    async def machines(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed("GET,HEAD")
        urls = [u for m in sorted(self.server.members.values(), key=lambda m: m.id) for u in m.client_urls]
        return web.Response(text=", ".join(urls), content_type="text/plain")


def _follower_stats() -> dict:
    latency = {"current": 0, "average": 0, "standardDeviation": 0, "minimum": 0, "maximum": 0}
    return {"latency": latency, "counts": {"fail": 0, "success": 0}}


def add_v2_routes(app: web.Application, server: EtcdServer) -> None:
    """Mount the v2 API (etcd serves it only with ``--enable-v2``)."""
    h = _V2Handlers(server)
    app.on_shutdown.append(h.on_shutdown)
    app.router.add_route("*", KEYS_PREFIX, h.keys)
    app.router.add_route("*", KEYS_PREFIX + "/{tail:.*}", h.keys)
    app.router.add_route("*", "/v2/stats/self", h.stats_self)
    app.router.add_route("*", "/v2/stats/leader", h.stats_leader)
    app.router.add_route("*", "/v2/stats/store", h.stats_store)
    members = MembersHandler(server)
    app.router.add_route("*", "/v2/members", members.handle)
    app.router.add_route("*", "/v2/members/{tail:.*}", members.handle)
    app.router.add_route("*", "/v2/machines", h.machines)



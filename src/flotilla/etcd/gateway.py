"""etcd 3.4's v3 JSON gateway (grpc-gateway) over the member's gRPC servicer objects.

``add_gateway_routes(app, servicers)`` adds ``POST /v3/...`` and ``POST /v3beta/...`` routes that call the
same servicer objects the gRPC server uses, with a ``GatewayContext`` standing in for
``grpc.aio.ServicerContext``. The behaviour copies what a real etcd 3.4.23 (Debian's build) answers:

- Requests: one JSON object per message, proto field names in snake_case or camelCase, 64-bit integers as
  numbers or strings, bytes as base64, enums by name or number; unknown fields ignored; an empty body is
  the empty message; anything after the first JSON value of a unary body is ignored.
- Responses: ``application/json``, proto field names (``cluster_id``, ``raft_term``), 64-bit integers as
  strings, default values omitted, enums by name.
- Errors: HTTP status from the gRPC code (``HTTP_STATUS``), body ``{"error": m, "message": m, "code": n}``.
  A body that is not valid JSON is InvalidArgument (400) for a unary call; for a streaming call it is
  Unknown (500), as grpc-gateway reports it before the stream exists.
- Streams (Watch, LeaseKeepAlive, Snapshot): every JSON value in the body is one request (sent as read);
  the response is chunked, one ``{"result": {...}}`` line per message; an error ends the stream with
  ``{"error": {"grpc_code", "http_code", "message", "http_status"}}`` (no newline), with that HTTP status
  if nothing was sent yet. Headers go out with the first message.

Not done here (the member's HTTP layer owns them): CORS headers and OPTIONS, which etcd adds to every
client response, and grpc-gateway's websocket upgrade of streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NoReturn

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from flotilla.etcd.api import rpc_pb2

__all__ = ["HTTP_STATUS", "ROUTES", "GatewayAbort", "GatewayContext", "Route", "add_gateway_routes"]

log = logging.getLogger("flotilla.etcd.gateway")

# grpc-gateway's HTTPStatusFromCode as built into Debian's etcd 3.4.23. FailedPrecondition is 412 there
# (verified: "user name not found" answers 412); upstream's build with grpc-gateway 1.9.5 answers 400.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 408,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

# A client that stops sending before a whole JSON value arrives must not grow the buffer forever; etcd's
# requests are at most 1.5 MiB, and grpc-go refuses messages over 2 MiB + slack by default.
MAX_BUFFERED_BYTES = 4 * 1024 * 1024
DISCONNECT_POLL_S = 0.5


@dataclass(frozen=True)
class Route:
    """One gateway path: which servicer method it calls, with which request type, in which shape."""

    path: str  # under /v3 (and /v3beta)
    service: str  # key into the servicers dict: "KV", "Watch", ...
    method: str
    request_type: type[Message]
    kind: str = "unary"  # "unary", "server_stream" or "bidi_stream"


def _r(path: str, service: str, method: str, request: str, kind: str = "unary") -> Route:
    return Route(path, service, method, getattr(rpc_pb2, request), kind)


# etcd 3.4.23's google.api.http bindings. Both Hash and HashKV are bound to /maintenance/hash there and
# Hash answers (verified), so HashKV has no route and /v3/maintenance/hashkv is a 404, as in etcd 3.4.
ROUTES: tuple[Route, ...] = (
    _r("/kv/range", "KV", "Range", "RangeRequest"),
    _r("/kv/put", "KV", "Put", "PutRequest"),
    _r("/kv/deleterange", "KV", "DeleteRange", "DeleteRangeRequest"),
    _r("/kv/txn", "KV", "Txn", "TxnRequest"),
    _r("/kv/compaction", "KV", "Compact", "CompactionRequest"),
    _r("/watch", "Watch", "Watch", "WatchRequest", "bidi_stream"),
    _r("/lease/grant", "Lease", "LeaseGrant", "LeaseGrantRequest"),
    _r("/lease/revoke", "Lease", "LeaseRevoke", "LeaseRevokeRequest"),
    _r("/kv/lease/revoke", "Lease", "LeaseRevoke", "LeaseRevokeRequest"),
    _r("/lease/keepalive", "Lease", "LeaseKeepAlive", "LeaseKeepAliveRequest", "bidi_stream"),
    _r("/lease/timetolive", "Lease", "LeaseTimeToLive", "LeaseTimeToLiveRequest"),
    _r("/kv/lease/timetolive", "Lease", "LeaseTimeToLive", "LeaseTimeToLiveRequest"),
    _r("/lease/leases", "Lease", "LeaseLeases", "LeaseLeasesRequest"),
    _r("/kv/lease/leases", "Lease", "LeaseLeases", "LeaseLeasesRequest"),
    _r("/cluster/member/add", "Cluster", "MemberAdd", "MemberAddRequest"),
    _r("/cluster/member/remove", "Cluster", "MemberRemove", "MemberRemoveRequest"),
    _r("/cluster/member/update", "Cluster", "MemberUpdate", "MemberUpdateRequest"),
    _r("/cluster/member/list", "Cluster", "MemberList", "MemberListRequest"),
    _r("/cluster/member/promote", "Cluster", "MemberPromote", "MemberPromoteRequest"),
    _r("/maintenance/alarm", "Maintenance", "Alarm", "AlarmRequest"),
    _r("/maintenance/status", "Maintenance", "Status", "StatusRequest"),
    _r("/maintenance/defragment", "Maintenance", "Defragment", "DefragmentRequest"),
    _r("/maintenance/hash", "Maintenance", "Hash", "HashRequest"),
    _r("/maintenance/snapshot", "Maintenance", "Snapshot", "SnapshotRequest", "server_stream"),
    _r("/maintenance/transfer-leadership", "Maintenance", "MoveLeader", "MoveLeaderRequest"),
    _r("/auth/enable", "Auth", "AuthEnable", "AuthEnableRequest"),
    _r("/auth/disable", "Auth", "AuthDisable", "AuthDisableRequest"),
    _r("/auth/authenticate", "Auth", "Authenticate", "AuthenticateRequest"),
    _r("/auth/user/add", "Auth", "UserAdd", "AuthUserAddRequest"),
    _r("/auth/user/get", "Auth", "UserGet", "AuthUserGetRequest"),
    _r("/auth/user/list", "Auth", "UserList", "AuthUserListRequest"),
    _r("/auth/user/delete", "Auth", "UserDelete", "AuthUserDeleteRequest"),
    _r("/auth/user/changepw", "Auth", "UserChangePassword", "AuthUserChangePasswordRequest"),
    _r("/auth/user/grant", "Auth", "UserGrantRole", "AuthUserGrantRoleRequest"),
    _r("/auth/user/revoke", "Auth", "UserRevokeRole", "AuthUserRevokeRoleRequest"),
    _r("/auth/role/add", "Auth", "RoleAdd", "AuthRoleAddRequest"),
    _r("/auth/role/get", "Auth", "RoleGet", "AuthRoleGetRequest"),
    _r("/auth/role/list", "Auth", "RoleList", "AuthRoleListRequest"),
    _r("/auth/role/delete", "Auth", "RoleDelete", "AuthRoleDeleteRequest"),
    _r("/auth/role/grant", "Auth", "RoleGrantPermission", "AuthRoleGrantPermissionRequest"),
    _r("/auth/role/revoke", "Auth", "RoleRevokePermission", "AuthRoleRevokePermissionRequest"),
)

# Headers grpc-gateway forwards as "grpcgateway-<name>" metadata (its permanent HTTP headers).
_PERMANENT_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept Accept-Charset Accept-Language Accept-Ranges Age Allow Alt-Svc Authorization Cache-Control "
        "Content-Location Content-Type Date Expect Expires From Host If-Match If-Modified-Since "
        "If-None-Match If-Schedule-Tag-Match If-Unmodified-Since Max-Forwards Origin Pragma Referer "
        "User-Agent Via Warning Connection Content-Length Cookie Keep-Alive Proxy-Authenticate "
        "Proxy-Authorization TE Trailer Transfer-Encoding Upgrade"
    ).split()
)
_GRPC_METADATA_PREFIX = "grpc-metadata-"
_TIMEOUT_UNITS_S = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class GatewayAbort(Exception):
    """Raised by ``GatewayContext.abort``: the call ends with this gRPC status."""

    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class GatewayContext:
    """The part of ``grpc.aio.ServicerContext`` servicers use, for a call arriving through the gateway.

    ``abort`` raises ``GatewayAbort``. A status set with ``set_code``/``set_details`` applies when the
    method returns, as in grpc. ``write`` sends one message of a streaming response.
    """

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._metadata = _metadata_from_headers(request)
        self._deadline = _deadline_from_headers(request)
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._writer: Callable[[Message], Any] | None = None

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata=()) -> NoReturn:
        raise GatewayAbort(code, details)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        peername = self._request.transport.get_extra_info("peername") if self._request.transport else None
        if not peername:
            return "unknown"
        host, port = peername[0], peername[1]
        return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def cancelled(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()

    def done(self) -> bool:
        return self.cancelled()

    def time_remaining(self) -> float | None:
        """Seconds left of the client's ``Grpc-Timeout`` header, or None without one."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def set_trailing_metadata(self, trailing_metadata) -> None:
        pass  # grpc-gateway 1.x sends trailers as HTTP trailers only; plain clients never see them.

    async def send_initial_metadata(self, initial_metadata) -> None:
        pass

    async def write(self, message: Message) -> None:
        if self._writer is None:
            raise RuntimeError("write() is only for streaming responses")
        await self._writer(message)


def add_gateway_routes(app: web.Application, servicers: dict[str, object]) -> None:
    """Route every etcd 3.4 gateway path, under /v3 and /v3beta, to ``servicers[service].Method``.

    Keys of ``servicers``: "KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth". A missing service
    answers Unimplemented (501) like a gRPC server without it. Other methods than POST answer 405.
    """
    for route in ROUTES:
        handler = _make_handler(route, servicers.get(route.service))
        for prefix in ("/v3", "/v3beta"):
            app.router.add_route("*", prefix + route.path, handler)


def _make_handler(route: Route, servicer: object | None):
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            # Go's http.Error, as grpc-gateway answers a path it knows with another method.
            return _plain_error(405, "Method Not Allowed")
        if servicer is None:
            unknown = f"unknown service etcdserverpb.{route.service}"
            return _error_response(grpc.StatusCode.UNIMPLEMENTED, unknown)
        method = getattr(servicer, route.method, None)
        if method is None:
            return _error_response(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        if route.kind == "unary":
            return await _unary(request, route, method)
        return await _stream(request, route, method)

    return handle


# --- unary ---


async def _unary(request: web.Request, route: Route, method) -> web.StreamResponse:
    try:
        message = _first_message(await request.read(), route.request_type)
    except _DecodeError as error:
        return _error_response(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    context = GatewayContext(request)
    try:
        response = await method(message, context)
    except GatewayAbort as abort:
        return _error_response(abort.code, abort.details)
    except Exception as error:  # noqa: BLE001 — a servicer bug must answer like grpc does, not drop the call
        return _error_response(*_status_of_exception(error, context))
    if context.code() not in (None, grpc.StatusCode.OK):
        return _error_response(context.code(), context.details())
    return web.Response(body=_dumps(_to_dict(response)).encode(), headers=_OK_HEADERS)


_OK_HEADERS = {"Content-Type": "application/json", "Grpc-Metadata-Content-Type": "application/grpc"}


def _status_of_exception(error: Exception, context: GatewayContext) -> tuple[grpc.StatusCode, str]:
    if context.code() not in (None, grpc.StatusCode.OK):
        return context.code(), context.details()  # e.g. the generated base servicer's "not implemented"
    log.exception("gateway: servicer raised", exc_info=error)
    return grpc.StatusCode.UNKNOWN, f"Unexpected {type(error)}: {error}"


# --- streaming ---


async def _stream(request: web.Request, route: Route, method) -> web.StreamResponse:
    reader = _JsonStreamReader(request)
    try:
        first = await reader.next_value()
        first_message = None if first is _EOF else _parse(first, route.request_type)
    except _DecodeError as error:
        # grpc-gateway returns the plain decode error before the stream exists: Unknown, 500.
        return _error_response(grpc.StatusCode.UNKNOWN, str(error))

    context = GatewayContext(request)
    sender = _StreamSender(request)
    context._writer = sender.send
    if route.kind == "server_stream":
        call = method(first_message or route.request_type(), context)
    else:
        call = method(_requests(first_message, reader, route.request_type), context)

    async def pump() -> None:
        try:
            await _drain(call, sender)
            if context.code() not in (None, grpc.StatusCode.OK):
                await sender.send_error(context.code(), context.details())
        except GatewayAbort as abort:
            await sender.send_error(abort.code, abort.details)
        except ConnectionResetError:
            return  # the client went away; nothing is left to tell it
        except Exception as error:  # noqa: BLE001 — end the stream with grpc's status, as grpc would
            await sender.send_error(*_status_of_exception(error, context))

    async with asyncio.TaskGroup() as group:
        pump_task = group.create_task(pump())
        watchdog = group.create_task(_cancel_on_disconnect(request, pump_task))
        pump_task.add_done_callback(lambda _: watchdog.cancel())
    return await sender.finish()


async def _drain(call, sender: _StreamSender) -> None:
    """Send every response of a streaming servicer call: an async iterator, or a coroutine using write()."""
    if hasattr(call, "__aiter__"):
        try:
            async for response in call:
                await sender.send(response)
        finally:
            if hasattr(call, "aclose"):
                await call.aclose()
    else:
        result = await call
        if result is not None:
            for response in result:
                await sender.send(response)


async def _cancel_on_disconnect(request: web.Request, task: asyncio.Task) -> None:
    # aiohttp does not cancel handlers when the client goes away (handler_cancellation is off by default),
    # and a quiet watch would otherwise wait forever.
    while not task.done():
        transport = request.transport
        if transport is None or transport.is_closing():
            task.cancel()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


async def _requests(first: Message | None, reader: _JsonStreamReader, request_type) -> AsyncIterator[Message]:
    """The request stream: the first message, then each further JSON value until the body ends.

    A later value that does not decode ends the stream quietly, as grpc-gateway stops sending then.
    """
    if first is None:
        return
    yield first
    while True:
        try:
            value = await reader.next_value()
            if value is _EOF:
                return
            message = _parse(value, request_type)
        except _DecodeError as error:
            log.info("gateway: stream request dropped: %s", error)
            return
        yield message


class _StreamSender:
    """Writes a chunked stream of ``{"result": ...}`` lines, sending headers with the first one."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._response: web.StreamResponse | None = None
        self._error_sent = False

    async def _start(self, status: int) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers=_OK_HEADERS)
        response.enable_chunked_encoding()
        await response.prepare(self._request)
        self._response = response
        return response

    async def send(self, message: Message) -> None:
        response = self._response or await self._start(200)
        await response.write(_dumps({"result": _to_dict(message)}).encode() + b"\n")

    async def send_error(self, code: grpc.StatusCode, details: str) -> None:
        http_code = HTTP_STATUS.get(code, 500)
        response = self._response or await self._start(http_code)
        chunk = {
            "error": {
                "grpc_code": code.value[0],
                "http_code": http_code,
                "message": details,
                "http_status": HTTPStatus(http_code).phrase,
            }
        }
        # grpc-gateway writes no delimiter after the error chunk.
        await response.write(_dumps(chunk).encode())

    async def finish(self) -> web.StreamResponse:
        response = self._response or await self._start(200)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response


# --- JSON in ---


class _DecodeError(Exception):
    """A request body that is not a valid message; the text is what the client sees."""


_EOF = object()


def _go_json_error(text: str, error: json.JSONDecodeError) -> str:
    # Go's encoding/json wording for the common cases: a truncated value, a bad character.
    if error.pos >= len(text.rstrip()):
        return "unexpected EOF"
    if error.msg == "Expecting value":
        return f"invalid character {text[error.pos]!r} looking for beginning of value"
    return f"invalid character {text[error.pos]!r}: {error.msg.lower()}"


def _first_message(body: bytes, request_type: type[Message]) -> Message:
    """The first JSON value of a unary body as a message; an empty body is the empty message."""
    text = _decode_utf8(body)
    start = _skip_space(text, 0)
    if start == len(text):
        return request_type()
    try:
        value, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as error:
        raise _DecodeError(_go_json_error(text, error)) from None
    return _parse(value, request_type)


def _decode_utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _DecodeError(f"invalid UTF-8 at byte {error.start}") from None


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "bool"}


def _parse(value: Any, request_type: type[Message]) -> Message:
    if value is None:
        return request_type()
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), "value")
        raise _DecodeError(f"json: cannot unmarshal {kind} into Go value of type map[string]json.RawMessage")
    # Unknown fields are dropped by hand: json_format's ignore_unknown_fields would also accept unknown
    # enum names, which etcd refuses.
    _check_known(value, request_type.DESCRIPTOR)
    try:
        return json_format.ParseDict(value, request_type())
    except json_format.ParseError as error:
        raise _DecodeError(str(error)) from None


_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _check_known(value: dict, descriptor) -> None:
    """Drop (in place) the keys naming no field, and refuse bytes that are not standard base64, as Go."""
    for key in list(value):
        field = descriptor.fields_by_name.get(key) or _by_json_name(descriptor).get(key)
        if field is None:
            del value[key]
            continue
        items = value[key] if isinstance(value[key], list) else [value[key]]
        for item in items:
            if field.message_type is not None and isinstance(item, dict):
                _check_known(item, field.message_type)
            elif field.type == field.TYPE_BYTES and isinstance(item, str):
                _check_base64(item)


@functools.cache
def _by_json_name(descriptor) -> dict:
    return {field.json_name: field for field in descriptor.fields}


def _check_base64(text: str) -> None:
    bad = next((i for i, char in enumerate(text) if char not in _BASE64_ALPHABET), None)
    if bad is None and len(text) % 4:
        bad = len(text) - len(text) % 4
    if bad is not None:
        raise _DecodeError(f"illegal base64 data at input byte {bad}")


class _JsonStreamReader:
    """Successive JSON values from a request body, read as they arrive (bodies of streaming calls)."""

    def __init__(self, request: web.Request) -> None:
        self._content = request.content
        self._text = ""
        self._eof = False
        self._decoder = json.JSONDecoder()

    async def next_value(self) -> Any:
        """The next JSON value, or ``_EOF`` once the body ends; ``_DecodeError`` for a bad one."""
        while True:
            start = _skip_space(self._text, 0)
            if start < len(self._text):
                try:
                    value, end = self._decoder.raw_decode(self._text, start)
                except json.JSONDecodeError as error:
                    if self._eof or len(self._text) > MAX_BUFFERED_BYTES:
                        raise _DecodeError(_go_json_error(self._text, error)) from None
                else:
                    # A number at the end of the buffer may still be growing; objects cannot be.
                    if end < len(self._text) or self._eof or not isinstance(value, int | float):
                        self._text = self._text[end:]
                        return value
            elif self._eof:
                return _EOF
            await self._read_more()

    async def _read_more(self) -> None:
        chunk = await self._content.readany()
        if not chunk:
            self._eof = True
            return
        self._text += _decode_utf8(chunk)


# --- JSON out ---


def _to_dict(message: Message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _dumps(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # Go's encoding/json escapes these for HTML safety; they only occur inside strings.
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(raw, escaped)
    return text


def _error_response(code: grpc.StatusCode, details: str) -> web.Response:
    body = {"error": details, "message": details, "code": code.value[0]}
    return web.Response(
        status=HTTP_STATUS.get(code, 500),
        body=_dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


def _plain_error(status: int, text: str) -> web.Response:
    return web.Response(
        status=status,
        text=text + "\n",
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )


# --- metadata ---


def _metadata_from_headers(request: web.Request) -> tuple[tuple[str, str], ...]:
    """grpc-gateway's header forwarding: Authorization as is, Grpc-Metadata-* stripped, known HTTP headers
    as grpcgateway-*, plus x-forwarded-host/for."""
    pairs: list[tuple[str, str]] = []
    for name, value in request.headers.items():
        lower = name.lower()
        if lower == "authorization":
            pairs.append(("authorization", value))
        if lower.startswith(_GRPC_METADATA_PREFIX):
            pairs.append((lower[len(_GRPC_METADATA_PREFIX):], value))
        elif lower in _PERMANENT_HEADERS:
            pairs.append(("grpcgateway-" + lower, value))
    pairs.append(("x-forwarded-host", request.host))
    if request.remote:
        pairs.append(("x-forwarded-for", request.remote))
    return tuple(pairs)


def _deadline_from_headers(request: web.Request) -> float | None:
    timeout = request.headers.get("Grpc-Timeout", "")
    if len(timeout) < 2 or timeout[-1] not in _TIMEOUT_UNITS_S or not timeout[:-1].isdigit():
        return None
    return time.monotonic() + int(timeout[:-1]) * _TIMEOUT_UNITS_S[timeout[-1]]

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
import base64
import contextlib
import functools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NoReturn

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from flotilla.etcd.api import rpc_pb2
from flotilla.gotext import go_json, go_quote

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
# What grpc-go in etcd accepts: --max-request-bytes (1.5 MiB by default) plus 512 KiB of gRPC overhead.
# Bigger messages are ResourceExhausted there, before etcd sees them; the gateway says the same.
DEFAULT_MAX_MESSAGE_BYTES = 1_572_864 + 512 * 1024
# A unary body is read whole (base64 makes values 4/3 bigger); past this, it is refused unread.
_MAX_BODY_FACTOR = 4


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


def add_gateway_routes(
    app: web.Application, servicers: dict[str, object], *, max_message_bytes: int | None = None
) -> None:
    """Route every etcd 3.4 gateway path, under /v3 and /v3beta, to ``servicers[service].Method``.

    Keys of ``servicers``: "KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth". A missing service
    answers Unimplemented (501) like a gRPC server without it. Other methods than POST answer 405; other
    paths under /v3 and /v3beta 404, as grpc-gateway. ``max_message_bytes`` is the gRPC server's receive
    limit (a bigger request is ResourceExhausted); by default the member's ``--max-request-bytes`` + 512
    KiB, read from a servicer's ``server.settings`` when there is one.
    """
    limit = max_message_bytes or _message_limit_of(servicers)
    for route in ROUTES:
        handler = _make_handler(route, servicers.get(route.service), limit)
        for prefix in ("/v3", "/v3beta"):
            app.router.add_route("*", prefix + route.path, handler)
    for prefix in ("/v3", "/v3beta"):
        app.router.add_route("*", prefix + "/{tail:.*}", _not_found)


def _message_limit_of(servicers: dict[str, object]) -> int:
    for servicer in servicers.values():
        settings = getattr(getattr(servicer, "server", None), "settings", None)
        max_request_bytes = getattr(settings, "max_request_bytes", None)
        if isinstance(max_request_bytes, int):
            return max_request_bytes + 512 * 1024
    return DEFAULT_MAX_MESSAGE_BYTES


async def _not_found(request: web.Request) -> web.StreamResponse:
    return _plain_error(404, "Not Found")  # grpc-gateway's mux for a path no route takes


def _make_handler(route: Route, servicer: object | None, max_message_bytes: int):
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            # Go's http.Error, as grpc-gateway answers a path it knows with another method.
            return _plain_error(405, "Method Not Allowed")
        if servicer is None:
            unknown = f"unknown service etcdserverpb.{route.service}"
            return _error_response(grpc.StatusCode.UNIMPLEMENTED, unknown)
        method = getattr(servicer, route.method, None)
        if method is None:
            unknown = f"unknown method {route.method} for service etcdserverpb.{route.service}"
            return _error_response(grpc.StatusCode.UNIMPLEMENTED, unknown)
        if route.kind == "unary":
            return await _unary(request, route, method, max_message_bytes)
        return await _stream(request, route, method)

    return handle


# --- unary ---


async def _unary(request: web.Request, route: Route, method, max_message_bytes: int) -> web.StreamResponse:
    len_limit = _MAX_BODY_FACTOR * max_message_bytes
    body = await _read_body(request, len_limit)
    if body is None:
        too_large = f"grpc: received message larger than max (over {len_limit} vs. {max_message_bytes})"
        return _error_response(grpc.StatusCode.RESOURCE_EXHAUSTED, too_large)
    try:
        message = _first_message(body, route.request_type)
    except _DecodeError as error:
        return _error_response(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    size = message.ByteSize()
    if size > max_message_bytes:
        too_large = f"grpc: received message larger than max ({size} vs. {max_message_bytes})"
        return _error_response(grpc.StatusCode.RESOURCE_EXHAUSTED, too_large)
    context = GatewayContext(request)
    try:
        response = await method(message, context)
    except GatewayAbort as abort:
        return _error_response(abort.code, abort.details)
    except Exception as error:  # noqa: BLE001 — a servicer bug must answer like grpc does, not drop the call
        return _error_response(*_status_of_exception(error, context))
    if context.code() not in (None, grpc.StatusCode.OK):
        return _error_response(context.code(), context.details())
    return web.Response(body=go_json(_to_dict(response)).encode(), headers=_OK_HEADERS)


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None past ``limit`` bytes. Read from the stream: aiohttp's client_max_size would
    answer 413 where etcd answers gRPC's ResourceExhausted."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


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
        await response.write(go_json({"result": _to_dict(message)}).encode() + b"\n")

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
        await response.write(go_json(chunk).encode())

    async def finish(self) -> web.StreamResponse:
        response = self._response or await self._start(200)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response


# --- JSON in ---
# grpc-gateway 1.x reads a body with Go's encoding/json Decoder and fills the message with golang/protobuf's
# jsonpb; clients see their error texts. The scanner and the field conversion below give the same answers.


class _DecodeError(Exception):
    """A request body that is not a valid message; the text is what the client sees."""


class _Incomplete(Exception):
    """The bytes end inside a JSON value."""


_EOF = object()
_WS = re.compile(rb"[ \t\r\n]*")
_STRING_STOP = re.compile(rb'[\x00-\x1f"\\]')
_DIGITS = re.compile(rb"[0-9]*")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_LITERALS = {ord("t"): b"true", ord("f"): b"false", ord("n"): b"null"}
_MAX_DEPTH = 10_000  # Go's maxNestingDepth


def _syntax_error(byte: int, where: str) -> _DecodeError:
    # encoding/json's quoteChar: the byte as a rune, quoted.
    quoted = "'\\''" if byte == 0x27 else "'\"'" if byte == 0x22 else "'" + go_quote(chr(byte))[1:-1] + "'"
    return _DecodeError(f"invalid character {quoted} {where}")


def _scan_value(data: bytes, pos: int, eof: bool) -> int:
    """The end of the JSON value at ``data[pos:]`` as Go's scanner finds it. Raises ``_DecodeError`` with
    Go's text for bad syntax, ``_Incomplete`` when the value goes on past the bytes (a number at the end of
    ``data`` is complete only at ``eof``)."""
    stack: list[int] = []  # "{" or "[" of each open container
    while True:
        pos, opened = _scan_one(data, pos, eof, stack)
        if opened:
            continue
        while True:  # after a value: close containers or move to the next element
            if not stack:
                return pos
            pos = _WS.match(data, pos).end()
            if pos >= len(data):
                raise _Incomplete
            byte = data[pos]
            if stack[-1] == 0x7B:
                if byte == 0x2C:
                    pos = _scan_key(data, pos + 1)
                    break
                if byte != 0x7D:
                    raise _syntax_error(byte, "after object key:value pair")
            else:
                if byte == 0x2C:
                    pos += 1
                    break
                if byte != 0x5D:
                    raise _syntax_error(byte, "after array element")
            stack.pop()
            pos += 1


def _scan_one(data: bytes, pos: int, eof: bool, stack: list[int]) -> tuple[int, bool]:
    """Scan a scalar or an empty container (False), or open a container to fill (True)."""
    pos = _WS.match(data, pos).end()
    if pos >= len(data):
        raise _Incomplete
    byte = data[pos]
    if byte in (0x7B, 0x5B):
        if len(stack) >= _MAX_DEPTH:
            raise _syntax_error(byte, "exceeded max depth")
        after = _WS.match(data, pos + 1).end()
        if after >= len(data):
            raise _Incomplete
        if data[after] == byte + 2:  # "{}" or "[]"
            return after + 1, False
        stack.append(byte)
        return (_scan_key(data, after) if byte == 0x7B else after), True
    if byte == 0x22:
        return _scan_string(data, pos + 1), False
    if byte == 0x2D or 0x30 <= byte <= 0x39:
        return _scan_number(data, pos, eof), False
    word = _LITERALS.get(byte)
    if word is None:
        raise _syntax_error(byte, "looking for beginning of value")
    for i, expected in enumerate(word[1:], pos + 1):
        if i >= len(data):
            raise _Incomplete
        if data[i] != expected:
            raise _syntax_error(data[i], f"in literal {word.decode()} (expecting {chr(expected)!r})")
    return pos + len(word), False


def _scan_key(data: bytes, pos: int) -> int:
    """An object key and its colon; the position after the colon."""
    pos = _WS.match(data, pos).end()
    if pos >= len(data):
        raise _Incomplete
    if data[pos] != 0x22:
        raise _syntax_error(data[pos], "looking for beginning of object key string")
    pos = _WS.match(data, _scan_string(data, pos + 1)).end()
    if pos >= len(data):
        raise _Incomplete
    if data[pos] != 0x3A:
        raise _syntax_error(data[pos], "after object key")
    return pos + 1


def _scan_string(data: bytes, pos: int) -> int:
    while True:
        stop = _STRING_STOP.search(data, pos)
        if stop is None:
            raise _Incomplete
        i = stop.start()
        byte = data[i]
        if byte == 0x22:
            return i + 1
        if byte < 0x20:
            raise _syntax_error(byte, "in string literal")
        if i + 1 >= len(data):
            raise _Incomplete
        escape = data[i + 1]
        if escape == 0x75:  # \uXXXX
            for j in range(i + 2, i + 6):
                if j >= len(data):
                    raise _Incomplete
                if data[j] not in _HEX:
                    raise _syntax_error(data[j], "in \\u hexadecimal character escape")
            pos = i + 6
        elif escape in b'"\\/bfnrt':
            pos = i + 2
        else:
            raise _syntax_error(escape, "in string escape code")


_NUMBER_PARTS = ((b".", "after decimal point in numeric literal"), (b"eE", "in exponent of numeric literal"))


def _scan_number(data: bytes, pos: int, eof: bool) -> int:
    n = len(data)
    if data[pos] == 0x2D:
        pos += 1
        if pos >= n:
            raise _Incomplete
        if not 0x30 <= data[pos] <= 0x39:
            raise _syntax_error(data[pos], "in numeric literal")
    pos = pos + 1 if data[pos] == 0x30 else _DIGITS.match(data, pos).end()
    for marks, where in _NUMBER_PARTS:
        if pos < n and data[pos] in marks:
            pos += 1
            if marks == b"eE" and pos < n and data[pos] in b"+-":
                pos += 1
            if pos >= n:
                raise _Incomplete
            if not 0x30 <= data[pos] <= 0x39:
                raise _syntax_error(data[pos], where)
            pos = _DIGITS.match(data, pos).end()
    if pos >= n and not eof:
        raise _Incomplete  # more digits may follow
    return pos


class _Number(str):
    """A JSON number, kept as its text (Go's errors quote it)."""


_DECODER = json.JSONDecoder(parse_int=_Number, parse_float=_Number)


def _loads(raw: bytes) -> Any:
    """A value ``_scan_value`` accepted. Go reads bad UTF-8 in strings as U+FFFD."""
    try:
        return _DECODER.decode(raw.decode("utf-8", "replace"))
    except RecursionError:
        raise _DecodeError("exceeded max depth") from None


def _first_message(body: bytes, request_type: type[Message]) -> Message:
    """The first JSON value of a unary body as a message (Go's Decoder: the rest is not read); an empty
    body is the empty message."""
    start = _WS.match(body).end()
    if start == len(body):
        return request_type()
    try:
        end = _scan_value(body, start, eof=True)
    except _Incomplete:
        raise _DecodeError("unexpected EOF") from None
    return _parse(_loads(body[start:end]), request_type)


def _unmarshal_text(text: str) -> Any:
    """Go's json.Unmarshal of ``text``: exactly one value."""
    data = text.encode("utf-8", "surrogatepass")
    start = _WS.match(data).end()
    try:
        end = _scan_value(data, start, eof=True)
    except _Incomplete:
        raise _DecodeError("unexpected end of JSON input") from None
    rest = _WS.match(data, end).end()
    if rest < len(data):
        raise _syntax_error(data[rest], "after top-level value")
    return _loads(data[start:end])


def _parse(value: Any, request_type: type[Message]) -> Message:
    message = request_type()
    _fill(message, value)
    return message


def _fill(message: Message, value: Any) -> None:
    """jsonpb's unmarshal of an object into ``message``: fields in declaration order (oneof members last),
    each by its JSON (camelCase) name or else its proto name; unknown names ignored; the first error wins."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise _type_error(value, "map[string]json.RawMessage")
    for field in _fields_in_order(message.DESCRIPTOR):
        if field.json_name in value:  # jsonpb favours the camelCase name when both are given
            raw = value[field.json_name]
        elif field.name in value:
            raw = value[field.name]
        else:
            continue
        _set_field(message, field, raw)


@functools.cache
def _fields_in_order(descriptor) -> tuple:
    fields = descriptor.fields
    return tuple(f for f in fields if f.containing_oneof is None) + tuple(
        f for f in fields if f.containing_oneof is not None
    )


def _set_field(message: Message, field, raw: Any) -> None:
    if field.is_repeated:
        if raw is None:
            return
        if not isinstance(raw, list):
            raise _type_error(raw, "[]json.RawMessage")
        target = getattr(message, field.name)
        for item in raw:
            if field.message_type is not None:
                _fill(target.add(), item)
            else:
                target.append(_scalar(field, item))
        return
    if field.message_type is not None:
        if raw is None and field.containing_oneof is None:
            return
        child = getattr(message, field.name)
        child.SetInParent()  # {} selects a oneof member and marks presence, as in Go
        _fill(child, raw)
        return
    if raw is not None:
        setattr(message, field.name, _scalar(field, raw))


_FD = FieldDescriptor
_INTEGERS = {
    _FD.TYPE_INT64: ("int64", True, 64), _FD.TYPE_SINT64: ("int64", True, 64),
    _FD.TYPE_SFIXED64: ("int64", True, 64), _FD.TYPE_UINT64: ("uint64", False, 64),
    _FD.TYPE_FIXED64: ("uint64", False, 64), _FD.TYPE_INT32: ("int32", True, 32),
    _FD.TYPE_SINT32: ("int32", True, 32), _FD.TYPE_SFIXED32: ("int32", True, 32),
    _FD.TYPE_UINT32: ("uint32", False, 32), _FD.TYPE_FIXED32: ("uint32", False, 32),
}  # fmt: skip
_SIGNED_INT = re.compile(r"-?[0-9]+")
_UNSIGNED_INT = re.compile(r"[0-9]+")


def _scalar(field, raw: Any) -> Any:
    kind = field.type
    if kind == _FD.TYPE_ENUM:
        return _enum_value(field.enum_type, raw)
    if kind in _INTEGERS:
        return _integer(_unquoted(raw), *_INTEGERS[kind])
    if kind in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
        return _float(_unquoted(raw), "float64" if kind == _FD.TYPE_DOUBLE else "float32")
    if kind == _FD.TYPE_BOOL:
        if isinstance(raw, bool):
            return raw
        raise _type_error(raw, "bool")
    if kind == _FD.TYPE_STRING:
        if _kind(raw) == "string":
            return raw.encode("utf-8", "replace").decode("utf-8")  # lone surrogates, as Go: U+FFFD
        raise _type_error(raw, "string")
    # bytes: standard base64, or (Go's []byte from a JSON array) a list of numbers
    if _kind(raw) == "string":
        return _go_base64(raw)
    if isinstance(raw, list):
        return bytes(0 if item is None else _integer(item, "uint8", False, 8) for item in raw)
    raise _type_error(raw, "[]uint8")


def _kind(raw: Any) -> str:
    if isinstance(raw, _Number):
        return "number"
    if isinstance(raw, bool):
        return "bool"
    return {str: "string", list: "array", dict: "object"}.get(type(raw), "value")


def _type_error(raw: Any, go_type: str, *, with_value: bool = False) -> _DecodeError:
    kind = _kind(raw)
    if with_value and kind == "number":
        kind = f"number {raw}"
    return _DecodeError(f"json: cannot unmarshal {kind} into Go value of type {go_type}")


def _unquoted(raw: Any) -> Any:
    # jsonpb strips the quotes of a string given for a number and parses what was inside as JSON.
    return _unmarshal_text(raw) if _kind(raw) == "string" else raw


def _integer(raw: Any, go_type: str, signed: bool, bits: int) -> int:
    if raw is None:
        return 0
    if not isinstance(raw, _Number):
        raise _type_error(raw, go_type)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if (_SIGNED_INT if signed else _UNSIGNED_INT).fullmatch(raw) and low <= int(raw) <= high:
        return int(raw)
    raise _type_error(raw, go_type, with_value=True)


def _float(raw: Any, go_type: str) -> float:
    if raw is None:
        return 0.0
    if not isinstance(raw, _Number):
        raise _type_error(raw, go_type)
    value = float(raw)
    if value in (float("inf"), float("-inf")):
        raise _type_error(raw, go_type, with_value=True)
    return value


def _enum_value(enum, raw: Any) -> int:
    go_type = _go_enum_name(enum)
    if _kind(raw) == "string":
        value = enum.values_by_name.get(raw)
        if value is None:
            raise _DecodeError(f"unknown value {go_quote(raw)} for enum {go_type}")
        return value.number
    return _integer(raw, go_type, True, 32)


def _go_enum_name(enum) -> str:
    """golang/protobuf's name of an enum type: the package, then the nesting joined by underscores."""
    package = enum.file.package
    return f"{package}.{enum.full_name[len(package) + 1:].replace('.', '_')}"


_BASE64_VALUES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _go_base64(text: str) -> bytes:
    """Go's base64.StdEncoding.DecodeString: padding required, CR and LF skipped anywhere; an error names
    the offset Go names."""
    src = text.encode("utf-8", "surrogatepass")
    i, n = 0, len(src)
    while i < n:
        j = 0
        while j < 4:
            if i == n:
                if j == 0:
                    break
                raise _base64_error(i - j)
            byte = src[i]
            i += 1
            if byte in _BASE64_VALUES:
                j += 1
            elif byte in (0x0A, 0x0D):
                continue
            elif byte != 0x3D or j < 2:
                raise _base64_error(i - 1)
            else:
                i = _base64_padding(src, i, j)
                if i < n:
                    raise _base64_error(i)
                break
    return base64.b64decode(src.replace(b"\n", b"").replace(b"\r", b""))


def _base64_padding(src: bytes, i: int, j: int) -> int:
    """After the first "=" of a quantum with ``j`` symbols: the position after its padding and newlines."""
    if j == 2:  # "==" expected
        while i < len(src) and src[i] in (0x0A, 0x0D):
            i += 1
        if i == len(src):
            raise _base64_error(len(src))
        if src[i] != 0x3D:
            raise _base64_error(i - 1)
        i += 1
    while i < len(src) and src[i] in (0x0A, 0x0D):
        i += 1
    return i


def _base64_error(offset: int) -> _DecodeError:
    return _DecodeError(f"illegal base64 data at input byte {offset}")


class _JsonStreamReader:
    """Successive JSON values from a request body, read as they arrive (bodies of streaming calls)."""

    def __init__(self, request: web.Request) -> None:
        self._content = request.content
        self._data = b""
        self._eof = False

    async def next_value(self) -> Any:
        """The next JSON value, or ``_EOF`` once the body ends; ``_DecodeError`` for a bad one."""
        while True:
            start = _WS.match(self._data).end()
            if start < len(self._data):
                try:
                    end = _scan_value(self._data, start, self._eof)
                except _Incomplete:
                    if self._eof:
                        raise _DecodeError("unexpected EOF") from None
                    if len(self._data) > MAX_BUFFERED_BYTES:
                        raise _DecodeError(f"a request of more than {MAX_BUFFERED_BYTES} bytes") from None
                else:
                    value = _loads(self._data[start:end])
                    self._data = self._data[end:]
                    return value
            elif self._eof:
                return _EOF
            await self._read_more()

    async def _read_more(self) -> None:
        chunk = await self._content.readany()
        if not chunk:
            self._eof = True
            return
        self._data += chunk


# --- JSON out ---


def _to_dict(message: Message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _error_response(code: grpc.StatusCode, details: str) -> web.Response:
    body = {"error": details, "message": details, "code": code.value[0]}
    return web.Response(
        status=HTTP_STATUS.get(code, 500),
        body=go_json(body).encode(),
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

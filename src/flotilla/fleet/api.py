"""fleet's HTTP API v1 (fleet's api/*.go, Documentation/api-v1.md) over the registry in the store.

Routes, under both ``/fleet/v1`` and the older ``/v1-alpha``:

    GET    /discovery           the discovery document (``api_discovery``)
    GET    /units               a page of units, by name
    GET    /units/{name}        one unit, or 404
    PUT    /units/{name}        create (201), set the desired state (204) or replace (201) a unit
    DELETE /units/{name}        destroy (204), or 404
    GET    /state               a page of unit states (``?machineID=&unitName=`` filter)
    GET    /state/{name}        the first state of one unit, or 404
    GET    /machines            a page of machines
    PATCH  /machines            JSON Patch of ``/<id>/metadata/<key>`` (204)

plus ``GET /metrics`` (Prometheus) at the root. Every response carries ``Server: fleetd/<version>``;
errors are fleet's ``{"error":{"code","message"}}`` with fleet's codes and, where fleet has one, its
message. Where fleet answered 500 for a client's mistake (an unknown desired state, re-submitting a unit
with new options, fleet #1266) we answer what the mistake deserves and say what to do.

Our extension: a unit the engine reported unschedulable carries ``"unschedulableReason"`` (fleet #1348:
fleetctl hung without saying why).

Each request reads one registry snapshot (one range read), so a response never mixes two revisions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from flotilla.client import ClientError, DeadlineExceeded, Unavailable
from flotilla.fleet.api_discovery import discovery_document
from flotilla.fleet.api_schema import (
    BodyError,
    PageToken,
    PageTokenError,
    error_body,
    go_json,
    go_quote,
    machine_entity,
    paginate,
    parse_metadata_patch,
    parse_unit_request,
    state_entity,
    token_from_query,
    unit_entity,
)
from flotilla.fleet.model import DESIRED_STATES, Unit
from flotilla.fleet.registry import Registry, RegistrySnapshot
from flotilla.units import (
    Option,
    UnitError,
    UnitFile,
    parse_unit_name,
    parse_unit_text_fleet,
    validate_fleet_unit,
)

__all__ = ["PREFIXES", "ApiServer", "create_app", "serve_api"]

log = logging.getLogger(__name__)

PREFIXES = ("/v1-alpha", "/fleet/v1")
JSON = "application/json"
_MAX_TOKEN_LIMIT = 0xFFFF  # the token's Limit is a uint16


class _HttpError(Exception):
    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _json_response(status: int, body: object) -> web.Response:
    # Go sends "application/json" without a charset; aiohttp's json_response would add one.
    return web.Response(status=status, body=go_json(body), headers={"Content-Type": JSON})


def _error_response(code: int, message: str) -> web.Response:
    return web.Response(status=code, body=error_body(code, message), headers={"Content-Type": JSON})


class _Metrics:
    """Per-app registry, so several apps (tests, a fleetd per process) never clash on names."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "fleet_api_requests", "Requests to the fleet API by method and status code.",
            ["method", "code"], registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "fleet_api_request_duration_seconds", "Time to answer a fleet API request.",
            ["method"], registry=self.registry,
        )  # fmt: skip


class _Api:
    def __init__(self, registry: Registry, token_limit: int, version: str) -> None:
        self.registry = registry
        self.token_limit = token_limit
        self.version = version
        self.metrics = _Metrics()

    # ------------------------------------------------------------------ plumbing

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.monotonic()
        try:
            response = await handler(request)
        except _HttpError as error:
            response = _error_response(error.code, error.message)
        except (Unavailable, DeadlineExceeded) as error:
            response = _error_response(503, f"fleet server unable to communicate with etcd: {error}")
        except ClientError as error:
            response = _error_response(500, f"the registry refused {request.method} {request.path}: {error}")
        except web.HTTPException as error:
            # aiohttp's own refusals (a body over client_max_size, ...) in fleet's error shape.
            response = _error_response(error.status, error.text or error.reason)
        except Exception:  # noqa: BLE001 - one broken request must not take the API down
            log.exception("fleet API: %s %s failed", request.method, request.path)
            response = _error_response(
                500, f"internal error answering {request.method} {request.path}; see fleetd's log"
            )
        self.metrics.requests.labels(request.method, str(response.status)).inc()
        self.metrics.duration.labels(request.method).observe(time.monotonic() - started)
        return response

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = f"fleetd/{self.version}"

    def _token(self, request: web.Request) -> PageToken:
        try:
            return token_from_query(request.query.getall("nextPageToken", []), self.token_limit)
        except PageTokenError as error:
            raise _HttpError(400, str(error)) from None

    @staticmethod
    def _allow(request: web.Request, methods: tuple[str, ...], message: str, code: int = 405) -> None:
        if request.method not in methods:
            raise _HttpError(code, message)

    # ------------------------------------------------------------------ resources

    async def discovery(self, request: web.Request) -> web.Response:
        self._allow(request, ("GET",), "only HTTP GET supported against this resource", code=400)
        document = discovery_document(f"{request.scheme}://{request.host}")
        return _json_response(200, document)

    async def units(self, request: web.Request) -> web.Response:
        self._allow(request, ("GET",), "only GET supported against this resource")
        token = self._token(request)
        snapshot = await self.registry.snapshot()
        units, next_token = paginate(snapshot.cluster.units, token)
        page: dict[str, object] = {}
        if next_token is not None:
            page["nextPageToken"] = next_token.encode()
        if units:
            page["units"] = [_unit_json(snapshot, unit, listed=True) for unit in units]
        return _json_response(200, page)

    async def unit(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self._allow(
            request, ("GET", "PUT", "DELETE"), "only GET, PUT and DELETE supported against this resource"
        )
        if request.method == "PUT":
            return await self._set_unit(request, name)
        if request.method == "DELETE":
            if not await self.registry.destroy_unit(name):
                raise _HttpError(404, "unit does not exist")
            return web.Response(status=204)
        snapshot = await self.registry.snapshot()
        unit = snapshot.cluster.unit(name)
        if unit is None:
            raise _HttpError(404, "unit does not exist")
        return _json_response(200, _unit_json(snapshot, unit, listed=False))

    async def states(self, request: web.Request) -> web.Response:
        self._allow(request, ("GET",), "only GET supported against this resource")
        token = self._token(request)
        machine_id = next(iter(request.query.getall("machineID", [])), "")
        unit_name = next(iter(request.query.getall("unitName", [])), "")
        snapshot = await self.registry.snapshot()
        states = sorted((r.state for r in snapshot.states), key=lambda s: (s.name, s.machine_id))
        chosen = [
            s for s in states
            if (not machine_id or s.machine_id == machine_id) and (not unit_name or s.name == unit_name)
        ]  # fmt: skip
        items, next_token = paginate(chosen, token)
        page: dict[str, object] = {}
        if next_token is not None:
            page["nextPageToken"] = next_token.encode()
        if items:
            page["states"] = [state_entity(s) for s in items]
        return _json_response(200, page)

    async def state(self, request: web.Request) -> web.Response:
        self._allow(request, ("GET",), "only GET supported against this resource")
        name = request.match_info["name"]
        snapshot = await self.registry.snapshot()
        found = sorted((r.state for r in snapshot.states if r.state.name == name), key=lambda s: s.machine_id)
        if not found:
            raise _HttpError(404, "unit state does not exist")
        return _json_response(200, state_entity(found[0]))

    async def machines(self, request: web.Request) -> web.Response:
        self._allow(request, ("GET", "PATCH"), "only GET and PATCH supported against this resource")
        if request.method == "PATCH":
            return await self._patch_machines(request)
        token = self._token(request)
        snapshot = await self.registry.snapshot()
        items, next_token = paginate(snapshot.cluster.machines, token)
        # MachinePage always has its list (Go makes it non-nil), but omitempty drops it when empty.
        page: dict[str, object] = {}
        if items:
            page["machines"] = [machine_entity(m) for m in items]
        if next_token is not None:
            page["nextPageToken"] = next_token.encode()
        return _json_response(200, page)

    async def serve_metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def not_allowed(self, request: web.Request) -> web.Response:
        raise _HttpError(405)

    async def not_found(self, request: web.Request) -> web.Response:
        # fleet's catch-all: the root itself is "method not allowed", anything unknown "not found".
        raise _HttpError(405 if request.path == "/" else 404)

    # ------------------------------------------------------------------ writes

    async def _patch_machines(self, request: web.Request) -> web.Response:
        try:
            ops = parse_metadata_patch(await request.read())
        except BodyError as error:
            raise _HttpError(400, str(error)) from None
        for op in ops:  # in order, after every one was checked (fleet applies none of a bad patch)
            await self.registry.set_machine_metadata(op.machine_id, op.key, op.value)
        return web.Response(status=204, headers={"Content-Type": JSON})

    async def _set_unit(self, request: web.Request, name: str) -> web.Response:
        _check_content_type(request)
        try:
            body = parse_unit_request(await request.read())
        except BodyError as error:
            raise _HttpError(400, f"unable to decode body: {error}") from None
        if body.name and body.name != name:
            raise _HttpError(
                400,
                f"name in URL {go_quote(name)} differs from unit name in request body {go_quote(body.name)}",
            )
        try:
            unit_name = parse_unit_name(name)
        except UnitError as error:
            raise _HttpError(400, str(error)) from None
        if body.desired_state and body.desired_state not in DESIRED_STATES:
            raise _HttpError(
                400,
                f"invalid desiredState {go_quote(body.desired_state)}: "
                f"use one of {', '.join(DESIRED_STATES)}",
            )
        submitted = _unit_from_options(name, body.options) if body.options else None
        snapshot = await self.registry.snapshot()
        existing = snapshot.cluster.unit(name)
        if existing is None and submitted is None:
            raise _HttpError(409, "unit does not exist and options field empty")
        if submitted is not None and (existing is None or existing.hash != submitted.hash):
            desired = body.desired_state or (existing.desired_state if existing else "inactive")
            _check_template(name, unit_name.is_template, desired)
            return await self._create(submitted.with_desired_state(desired), replace=existing is not None)
        if not body.desired_state:
            raise _HttpError(409, "must provide DesiredState to update existing unit")
        _check_template(name, unit_name.is_template, body.desired_state)
        if not await self.registry.set_desired_state(name, body.desired_state):
            raise _HttpError(404, "unit does not exist")  # destroyed since the snapshot
        return web.Response(status=204)

    async def _create(self, unit: Unit, *, replace: bool) -> web.Response:
        if replace:
            # fleet's way to change a unit's options is destroy and re-create (fleetctl --replace); the
            # engine then unschedules the old copy and places the new one.
            await self.registry.destroy_unit(unit.name)
        if not await self.registry.create_unit(unit):
            raise _HttpError(
                409, f"unit {unit.name} was created by another request at the same time; read it and retry"
            )
        return web.Response(status=201)


def _check_content_type(request: web.Request) -> None:
    values = request.headers.getall("Content-Type", [])
    if len(values) != 1:
        raise _HttpError(415, f"expected 1 Content-Type, got {len(values)}")
    if values[0].split(";", 1)[0].strip() != JSON:
        raise _HttpError(415, "only acceptable Content-Type is application/json")


def _check_template(name: str, is_template: bool, desired: str) -> None:
    if is_template and desired != "inactive":
        raise _HttpError(400, f"cannot activate template {go_quote(name)}")


def _unit_from_options(name: str, options: Sequence[Option]) -> Unit:
    """The unit fleet would store for these options; 400 with fleet's message if fleet refuses them."""
    unit_file = UnitFile.from_options(options, path=name)
    try:
        validate_fleet_unit(unit_file)
        # Stored as go-systemd's serialization, which is exactly what fleet hashes.
        unit = Unit.from_text(name, unit_file.to_text())
    except UnitError as error:
        raise _HttpError(400, str(error)) from None
    _check_round_trip(name, options, unit.text)
    return unit


def _check_round_trip(name: str, options: Sequence[Option], text: str) -> None:
    """Refuse options that do not read back as themselves: a newline in a value (or ``=`` in a name, ``]``
    in a section) would otherwise smuggle other options into the stored unit. Blanks around a value are
    fine; every reader of the unit drops them."""
    read_back = parse_unit_text_fleet(text, path=name).options
    first_seen = {section: i for i, section in reversed(list(enumerate(o.section for o in options)))}
    # The text groups options by section (go-systemd's Serialize), and so does reading it back.
    grouped = sorted(enumerate(options), key=lambda pair: first_seen[pair[1].section])
    for position, (index, option) in enumerate(grouped):
        again = read_back[position] if position < len(read_back) else None
        if (
            again is None
            or (again.section, again.name) != (option.section, option.name)
            or (again.value not in (option.value, option.value.strip()))
        ):
            raise _HttpError(
                400,
                f"options[{index}] ({option.section}.{option.name}) of {name} cannot be stored as one "
                "unit-file line; end continued lines with a backslash and keep '=' out of names and ']' "
                "out of sections",
            )
    if len(read_back) != len(options):
        raise _HttpError(
            400, f"the options of {name} read back as {len(read_back)} options, not {len(options)}"
        )


def _unit_json(snapshot: RegistrySnapshot, unit: Unit, *, listed: bool) -> dict[str, object]:
    if unit.is_global:
        # fleet schedules no global unit: its list reports them "inactive" without a machine (no target,
        # no state), and a single GET skips the schedule lookup altogether, so no currentState at all.
        current, machine = ("inactive" if listed else None), None
    else:
        current, machine = snapshot.current_state(unit.name), snapshot.cluster.targets.get(unit.name)
    return unit_entity(
        unit.name,
        unit.text,
        unit.desired_state,
        current_state=current,
        machine_id=machine,
        unschedulable_reason=snapshot.unschedulable.get(unit.name),
    )


_API = web.AppKey("fleet_api", _Api)


def create_app(registry: Registry, *, token_limit: int = 100, version: str) -> web.Application:
    """fleet's API v1 over ``registry``; ``token_limit`` is the page size (fleet's ``--token-limit``)."""
    if not 1 <= token_limit <= _MAX_TOKEN_LIMIT:
        raise ValueError(f"token_limit {token_limit} must be 1..{_MAX_TOKEN_LIMIT} (it travels as a uint16)")
    api = _Api(registry, token_limit, version)
    app = web.Application(middlewares=[api.middleware])
    app[_API] = api
    app.on_response_prepare.append(api.on_prepare)
    for prefix in PREFIXES:
        app.router.add_route("*", f"{prefix}/discovery", api.discovery)
        app.router.add_route("*", f"{prefix}/machines", api.machines)
        app.router.add_route("*", f"{prefix}/state", api.states)
        app.router.add_route("*", prefix + "/state/{name:[^/]+}", api.state)
        app.router.add_route("*", f"{prefix}/units", api.units)
        app.router.add_route("*", prefix + "/units/{name:[^/]+}", api.unit)
        app.router.add_route("*", prefix, api.not_allowed)
    app.router.add_route("*", "/metrics", api.serve_metrics)
    app.router.add_route("*", "/{tail:.*}", api.not_found)
    return app


@dataclass(frozen=True)
class ApiServer:
    """Where a served API listens: the unix socket path and the bound TCP (host, port), if any."""

    unix_path: str | None
    tcp_address: tuple[str, int] | None


def _unix_listener(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise FileExistsError(
                f"{path} exists and is not a socket; remove it or choose another --api path"
            )
        os.unlink(path)  # a socket left by a previous fleetd, as fleet replaces it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Before listen(), nobody can connect, so the socket is never reachable with wider permissions.
        os.chmod(path, 0o600)
    except BaseException:
        sock.close()
        raise
    return sock


def _tcp_listener(address: str) -> socket.socket:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"TCP address {address!r} must be host:port, e.g. 127.0.0.1:49153 or [::1]:49153")
    host = host.strip("[]") or "127.0.0.1"
    family, kind, proto, _, sockaddr = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.asynccontextmanager
async def serve_api(
    app: web.Application, *, unix_path: str | None, tcp: str | None, tcp_ssl: ssl.SSLContext | None = None
) -> AsyncIterator[ApiServer]:
    """Serve ``app`` on a unix socket (mode 0600) and/or TCP ``host:port`` (port 0: any free port; TLS
    with ``tcp_ssl``) while the context is open; the socket file is removed on exit."""
    if unix_path is None and tcp is None:
        raise ValueError("serve_api needs a unix socket path, a TCP host:port or both")
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sockets: list[socket.socket] = []
    try:
        if unix_path is not None:
            sockets.append(_unix_listener(unix_path))
        tcp_address = None
        if tcp is not None:
            sockets.append(_tcp_listener(tcp))
            tcp_address = sockets[-1].getsockname()[:2]
        for sock in sockets:
            secure = tcp_ssl if sock.family != socket.AF_UNIX else None
            await web.SockSite(runner, sock, ssl_context=secure).start()
        yield ApiServer(unix_path, tcp_address)
    finally:
        await runner.cleanup()
        for sock in sockets:
            sock.close()
        if unix_path is not None and sockets:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unix_path)

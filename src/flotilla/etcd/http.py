"""The member's HTTP/1 side on the client port: ``/version``, ``/health``, ``/metrics``, the v3 JSON
gateway (``/v3/...`` and ``/v3beta/...``) and, with ``--enable-v2``, the v2 API (``/v2/...``); and the
HTTP endpoints etcd serves on the peer port (``/members``, ``/version``), which proxies and joining
members read."""

from __future__ import annotations

import json

from aiohttp import web

from flotilla.etcd import errors
from flotilla.etcd.gateway import add_gateway_routes
from flotilla.etcd.goresponses import method_not_allowed
from flotilla.etcd.server import EtcdServer
from flotilla.etcd.services import version_info
from flotilla.etcd.v2http import add_v2_routes, cors_and_clean_path_middleware

__all__ = ["make_http_app", "make_peer_http_server"]


def make_http_app(
    server: EtcdServer,
    servicers: dict[str, object],
    metrics,
    *,
    enable_v2: bool = False,
    cors_origins: tuple[str, ...] = ("*",),
) -> web.Application:
    middleware = cors_and_clean_path_middleware(cors_origins)
    app = web.Application(
        client_max_size=server.settings.max_request_bytes + 512 * 1024, middlewares=[middleware]
    )
    app.on_response_prepare.append(middleware.on_prepare)

    async def version(request: web.Request) -> web.Response:
        if request.method != "GET":
            return method_not_allowed("GET")
        info = version_info()
        body = {"etcdserver": info["etcdserver"], "etcdcluster": info["etcdcluster"]}
        return web.Response(text=json.dumps(body, separators=(",", ":")), content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        if request.method != "GET":
            return method_not_allowed("GET")
        # etcd 3.4: unhealthy with an active alarm, without a leader, or when a quorum read fails.
        healthy = not server.alarms and server.leader_id() != 0
        if healthy:
            try:
                await server.read_barrier()
            except errors.EtcdError:
                healthy = False
        body = json.dumps({"health": "true" if healthy else "false"}, separators=(",", ":"))
        # etcd 3.4 sends this JSON as text/plain.
        return web.Response(text=body, status=200 if healthy else 503, content_type="text/plain")

    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    app.router.add_route("*", "/version", version)
    app.router.add_route("*", "/health", health)
    app.router.add_get("/metrics", metrics_handler)
    add_gateway_routes(app, servicers)
    if enable_v2:
        add_v2_routes(app, server)
    return app


def make_peer_http_server(server: EtcdServer) -> web.Server:
    """etcd's peer-port HTTP endpoints: ``GET /members`` (the members as etcd's peer handler lists them,
    with the cluster ID in ``X-Etcd-Cluster-ID``) and ``GET /version``."""

    async def handle(request: web.BaseRequest) -> web.Response:
        headers = {"X-Etcd-Cluster-ID": format(server.cluster_id, "x")}
        if request.path == "/members":
            if request.method != "GET":
                return method_not_allowed("GET")
            body = [
                {
                    "id": format(m.id, "x"),
                    "name": m.name,
                    "peerURLs": list(m.peer_urls),
                    "clientURLs": list(m.client_urls),
                }
                for m in sorted(server.members.values(), key=lambda m: m.id)
            ]
            return web.Response(text=json.dumps(body), content_type="application/json", headers=headers)
        if request.path == "/version":
            info = version_info()
            body = {"etcdserver": info["etcdserver"], "etcdcluster": info["etcdcluster"]}
            return web.Response(text=json.dumps(body), content_type="application/json", headers=headers)
        return web.Response(status=404, text="404 page not found\n", headers=headers)

    return web.Server(handle)

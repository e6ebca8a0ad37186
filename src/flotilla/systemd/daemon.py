"""``flotilla systemd --root DIR``: the manager behind a local socket, answering systemctl and fleet.

The socket (``DIR/run/flotilla-systemd/manager.sock``, mode 0600) is the only way in: anything that
can start units runs commands on this machine, so it is reachable only locally (DESIGN decision 9).
The API is small JSON over HTTP; ``flotilla.systemd.client.ManagerClient`` is its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from flotilla.systemd.errors import SystemdError
from flotilla.systemd.manager import Manager

__all__ = ["run_daemon", "serve"]

_JOBS = ("start", "stop", "restart")


def _routes(manager: Manager, background: set[asyncio.Task[Any]]) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/v1/ping")
    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"pid": os.getpid(), "root": str(manager.layout.root)})

    @routes.get("/v1/units")
    async def list_units(request: web.Request) -> web.Response:
        include = request.query.get("all") == "1"
        units = await manager.list_units(include_inactive=include)
        return web.json_response({"units": [u.to_json() for u in units]})

    @routes.get("/v1/unit-files")
    async def unit_files(request: web.Request) -> web.Response:
        return web.json_response({"unit_files": manager.unit_files()})

    @routes.get("/v1/units/{name}")
    async def status(request: web.Request) -> web.Response:
        return web.json_response((await manager.unit_status(request.match_info["name"])).to_json())

    @routes.get("/v1/units/{name}/file")
    async def unit_file(request: web.Request) -> web.Response:
        return web.json_response({"text": await manager.unit_file_text(request.match_info["name"])})

    @routes.post("/v1/units/{name}/{action}")
    async def action(request: web.Request) -> web.Response:
        name, verb = request.match_info["name"], request.match_info["action"]
        body = await request.json() if request.can_read_body else {}
        if verb in _JOBS:
            job = getattr(manager, f"{verb}_unit")(name)
            if body.get("no_block"):
                task = asyncio.get_running_loop().create_task(job)
                background.add(task)
                task.add_done_callback(background.discard)
                return web.json_response({"unit": name, "job_type": verb, "result": "queued", "message": ""})
            return web.json_response((await job).to_json())
        if verb == "kill":
            await manager.kill_unit(name, int(body.get("signal", signal.SIGTERM)))
            return web.json_response({})
        if verb in ("enable", "disable"):
            if verb == "enable":
                changes = await manager.enable_unit(name, runtime=bool(body.get("runtime")))
            else:
                changes = await manager.disable_unit(name)
            return web.json_response({"changes": changes})
        if verb == "unlink":
            await manager.unlink_unit_file(name)
            return web.json_response({})
        if verb == "reset-failed":
            await manager.reset_failed(name)
            return web.json_response({})
        raise web.HTTPNotFound(text=f"unknown action {verb}")

    @routes.post("/v1/reset-failed")
    async def reset_all(request: web.Request) -> web.Response:
        await manager.reset_failed(None)
        return web.json_response({})

    @routes.post("/v1/daemon-reload")
    async def reload(request: web.Request) -> web.Response:
        await manager.daemon_reload()
        return web.json_response({})

    @routes.post("/v1/link")
    async def link(request: web.Request) -> web.Response:
        body = await request.json()
        await manager.link_unit_file(body["path"], runtime=bool(body.get("runtime", True)))
        return web.json_response({})

    return routes


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except SystemdError as error:
        return web.json_response({"error": type(error).__name__, "message": str(error)}, status=404)


async def serve(manager: Manager, stop: asyncio.Event, *, start_default: bool = True) -> None:
    """Serve ``manager`` on its socket until ``stop`` is set, then stop every unit."""
    layout = manager.layout
    background: set[asyncio.Task[Any]] = set()
    app = web.Application(middlewares=[_errors])
    app.add_routes(_routes(manager, background))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with contextlib.suppress(FileNotFoundError):
        layout.socket_path.unlink()
    site = web.UnixSite(runner, str(layout.socket_path))
    await site.start()
    os.chmod(layout.socket_path, 0o600)
    layout.pid_file.write_text(f"{os.getpid()}\n")
    try:
        if start_default:
            await manager.start_default_target()
        await stop.wait()
    finally:
        for task in list(background):
            task.cancel()
        await runner.cleanup()
        await manager.close()
        for path in (layout.socket_path, layout.pid_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


async def run_daemon(
    root: str | Path, *, default_env: Mapping[str, str], hostname: str | None, use_cgroups: bool = True
) -> None:
    manager = Manager(root, default_env=default_env, hostname=hostname, use_cgroups=use_cgroups)
    await manager.open()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(manager, stop)

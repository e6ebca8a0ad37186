"""``ManagerClient``: the UnitManager Protocol over a running manager's socket (systemctl, fleet's agent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from flotilla.systemd.errors import ManagerUnavailable, NoSuchUnit
from flotilla.systemd.layout import Layout
from flotilla.systemd.protocol import JobResult, UnitStatus

__all__ = ["ManagerClient"]


class ManagerClient:
    """Talks to ``flotilla systemd --root DIR``. Use as an async context manager."""

    def __init__(self, root: str | Path, *, timeout_s: float | None = None) -> None:
        self.layout = Layout.at(root)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ManagerClient:
        if not self.layout.socket_path.exists():
            raise ManagerUnavailable(
                f"no unit manager runs for {self.layout.root} ({self.layout.socket_path} "
                "is missing); start one with: flotilla systemd --root "
                f"{self.layout.root}"
            )
        connector = aiohttp.UnixConnector(path=str(self.layout.socket_path))
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self._session is not None, "use `async with ManagerClient(...)`"
        try:
            async with self._session.request(method, f"http://manager/v1{path}", json=body) as response:
                data = await response.json()
        except (TimeoutError, aiohttp.ClientConnectionError) as error:
            raise ManagerUnavailable(
                f"the unit manager for {self.layout.root} does not answer: {error}"
            ) from error
        if response.status == 404 and isinstance(data, dict) and data.get("error") == "NoSuchUnit":
            raise NoSuchUnit(data["message"].removeprefix("Unit ").removesuffix(" not found."))
        if response.status >= 400:
            raise ManagerUnavailable(data.get("message", str(data)) if isinstance(data, dict) else str(data))
        return data

    async def ping(self) -> dict[str, Any]:
        return await self._call("GET", "/ping")

    async def _job(self, name: str, verb: str, no_block: bool) -> JobResult:
        return JobResult.from_json(await self._call("POST", f"/units/{name}/{verb}", {"no_block": no_block}))

    async def start_unit(self, name: str, *, no_block: bool = False) -> JobResult:
        return await self._job(name, "start", no_block)

    async def stop_unit(self, name: str, *, no_block: bool = False) -> JobResult:
        return await self._job(name, "stop", no_block)

    async def restart_unit(self, name: str, *, no_block: bool = False) -> JobResult:
        return await self._job(name, "restart", no_block)

    async def kill_unit(self, name: str, signal_number: int) -> None:
        await self._call("POST", f"/units/{name}/kill", {"signal": signal_number})

    async def reset_failed(self, name: str | None = None) -> None:
        await self._call("POST", f"/units/{name}/reset-failed" if name else "/reset-failed", {})

    async def unit_status(self, name: str) -> UnitStatus:
        return UnitStatus.from_json(await self._call("GET", f"/units/{name}"))

    async def list_units(self, *, include_inactive: bool = False) -> list[UnitStatus]:
        data = await self._call("GET", f"/units?all={1 if include_inactive else 0}")
        return [UnitStatus.from_json(u) for u in data["units"]]

    async def unit_files(self) -> list[tuple[str, str]]:
        return [tuple(pair) for pair in (await self._call("GET", "/unit-files"))["unit_files"]]

    async def unit_file_text(self, name: str) -> str:
        return (await self._call("GET", f"/units/{name}/file"))["text"]

    async def link_unit_file(self, path: str, *, runtime: bool = True) -> None:
        await self._call("POST", "/link", {"path": str(Path(path).absolute()), "runtime": runtime})

    async def unlink_unit_file(self, name: str) -> None:
        await self._call("POST", f"/units/{name}/unlink", {})

    async def enable_unit(self, name: str, *, runtime: bool = False) -> list[str]:
        return (await self._call("POST", f"/units/{name}/enable", {"runtime": runtime}))["changes"]

    async def disable_unit(self, name: str) -> list[str]:
        return (await self._call("POST", f"/units/{name}/disable", {}))["changes"]

    async def daemon_reload(self) -> None:
        await self._call("POST", "/daemon-reload", {})

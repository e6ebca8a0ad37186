"""``--driver=API``: fleetctl over fleet's HTTP API v1, on a unix socket (``unix:///var/run/fleet.sock``)
or over http(s)://, as fleet's client/http.go: lists follow ``nextPageToken`` to the last page, a 404 on
one unit means "no such unit", and any other failure is reported as Google's API client words it."""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from flotilla.fleetctl.model import FleetctlError, MachineInfo, UnitInfo, UnitStateInfo
from flotilla.units import Option

__all__ = ["HttpAPI", "parse_api_endpoint"]


def parse_api_endpoint(endpoint: str) -> tuple[str, str]:
    """``(base_url, unix_socket_path)`` for an endpoint; the path is empty for http(s). Raises
    FleetctlError with fleet's messages for an endpoint it cannot use."""
    url = urlsplit(endpoint)
    if not url.scheme:
        raise FleetctlError("URL scheme undefined")
    if url.scheme in ("unix", "file"):
        # "unix://var/run/fleet.sock" (one slash short) would name host "var": fleet refuses it.
        if url.netloc:
            raise FleetctlError(f'unable to connect to host "{url.netloc}" with scheme "{url.scheme}"')
        return "http://domain-sock/fleet/v1/", url.path
    if url.scheme not in ("http", "https"):
        raise FleetctlError(
            f'unsupported URL scheme "{url.scheme}" in endpoint {endpoint}; use unix:// or http(s)://'
        )
    return f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}/fleet/v1/", ""


class HttpAPI:
    """fleet's client.API over HTTP. One aiohttp session, opened on first use; call ``close()``."""

    def __init__(self, endpoint: str, *, timeout_s: float = 3.0, ssl_context: ssl.SSLContext | None = None):
        self.base_url, self.socket_path = parse_api_endpoint(endpoint)
        self.timeout_s = timeout_s
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self.socket_path:
                connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=self.socket_path)
            else:
                connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context else True)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        return self._session

    async def _call(self, method: str, path: str, body: Any = None, params: dict | None = None) -> Any:
        """The decoded JSON answer (None for 204/404 on GET of one object); raises FleetctlError."""
        kwargs: dict[str, Any] = {"params": params}
        if body is not None:
            kwargs["json"] = body  # aiohttp sets Content-Type: application/json, which fleet requires
        try:
            async with self._session_now().request(method, self.base_url + path, **kwargs) as response:
                text = await response.text()
                if response.status >= 300:
                    raise FleetctlError(_api_error(response.status, text))
                if response.status == 204 or not text:
                    return None
                return await response.json(content_type=None)
        except aiohttp.ClientError as error:
            where = self.socket_path or self.base_url
            raise FleetctlError(
                f"{method} {path} on {where} failed: {error} (is fleetd running there?)"
            ) from error
        except TimeoutError as error:
            raise FleetctlError(
                f"{method} {path}: no answer within {self.timeout_s}s (--request-timeout)"
            ) from error

    async def _pages(self, path: str, key: str, params: dict | None = None) -> list[dict]:
        items: list[dict] = []
        params = dict(params or {})
        while True:
            page = await self._call("GET", path, params=params or None) or {}
            items.extend(page.get(key) or [])
            token = page.get("nextPageToken")
            if not token:
                return items
            params["nextPageToken"] = token

    async def machines(self) -> list[MachineInfo]:
        return [
            MachineInfo(m.get("id", ""), m.get("primaryIP", ""), dict(m.get("metadata") or {}))
            for m in await self._pages("machines", "machines")
        ]

    async def unit(self, name: str) -> UnitInfo | None:
        try:
            body = await self._call("GET", "units/" + _quote(name))
        except FleetctlError as error:
            if str(error).startswith("googleapi: Error 404"):
                return None
            raise
        return None if body is None else _unit_from_json(body)

    async def units(self) -> list[UnitInfo]:
        return [_unit_from_json(u) for u in await self._pages("units", "units")]

    async def unit_states(self, unit_name: str | None = None) -> list[UnitStateInfo]:
        params = {"unitName": unit_name} if unit_name else None
        return [
            UnitStateInfo(
                s.get("name", ""),
                s.get("hash", ""),
                s.get("machineID", ""),
                s.get("systemdLoadState", ""),
                s.get("systemdActiveState", ""),
                s.get("systemdSubState", ""),
            )  # fmt: skip
            for s in await self._pages("state", "states", params)
        ]

    async def set_unit_target_state(self, name: str, state: str) -> None:
        await self._call("PUT", "units/" + _quote(name), {"name": name, "desiredState": state})

    async def create_unit(self, unit: UnitInfo) -> None:
        body = {
            "name": unit.name,
            "options": [{"section": o.section, "name": o.name, "value": o.value} for o in unit.options],
            "desiredState": unit.desired_state or "inactive",
        }
        await self._call("PUT", "units/" + _quote(unit.name), body)

    async def destroy_unit(self, name: str) -> bool:
        try:
            await self._call("DELETE", "units/" + _quote(name))
        except FleetctlError as error:
            if str(error).startswith("googleapi: Error 404"):
                return False
            raise
        return True


def _quote(name: str) -> str:
    return quote(name, safe="@:")


def _api_error(status: int, text: str) -> str:
    # googleapi.Error's wording, which is what fleetctl prints for a failed API call.
    message = text.strip()
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        pass
    return (
        f"googleapi: Error {status}: {message}" if message else f"googleapi: got HTTP response code {status}"
    )


def _unit_from_json(body: dict) -> UnitInfo:
    return UnitInfo(
        body.get("name", ""),
        tuple(
            Option(o.get("section", ""), o.get("name", ""), o.get("value", ""))
            for o in body.get("options") or []
        ),
        body.get("desiredState", ""),
        body.get("currentState", ""),
        body.get("machineID", ""),
        body.get("unschedulableReason", ""),
    )

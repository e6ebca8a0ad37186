"""The plain-text answers Go's net/http gives (http.Error, ServeMux's 404, the server's 400 for a
malformed request line): etcd's clients and scripts see these bodies and headers, so ours are the same."""

from __future__ import annotations

from aiohttp import web

__all__ = ["bad_request", "method_not_allowed", "not_found"]


def _error(text: str, status: int, headers: dict | None = None) -> web.Response:
    return web.Response(
        text=text + "\n",
        status=status,
        headers={**(headers or {}), "X-Content-Type-Options": "nosniff"},
        content_type="text/plain",
    )


def method_not_allowed(allowed: str | None, headers: dict | None = None) -> web.Response:
    """405 ``Method Not Allowed`` with ``Allow: allowed`` (etcd's allowMethod; None: no Allow header)."""
    extra = dict(headers or {})
    if allowed is not None:
        extra["Allow"] = allowed
    return _error("Method Not Allowed", 405, extra)


def not_found() -> web.Response:
    """ServeMux's answer for a path no handler serves."""
    return _error("404 page not found", 404)


def bad_request() -> web.Response:
    """Go's server refusing a request it cannot parse (e.g. a bad %-escape in the path): no handler
    runs, so none of etcd's headers are on it."""
    return web.Response(
        text="400 Bad Request", status=400, content_type="text/plain", headers={"Connection": "close"}
    )

"""``/v2/members`` as etcd 3.4 answers it: the list, the leader, and membership changes (add, remove,
update peer URLs) with etcd's request checks (JSON content type, peer URLs, member IDs), its statuses
(201, 204, 404, 409, 410) and its ``{"message": ...}`` errors."""

from __future__ import annotations

import json

from aiohttp import web

from flotilla.etcd import errors
from flotilla.etcd.config import validate_url
from flotilla.etcd.goresponses import method_not_allowed
from flotilla.gotext import go_json

__all__ = ["MembersHandler"]

_CONFLICTS = {
    errors.member_exists().message: "membership: ID exists",
    errors.peer_url_exists().message: "membership: peerURL exists",
}


def _message(text: str, status: int, headers: dict) -> web.Response:
    # etcd writes these errors with json.Marshal: no trailing newline.
    return web.Response(body=go_json({"message": text}).encode(), status=status, headers=headers)


def _go_json_error(error: json.JSONDecodeError, text: str) -> str:
    """The message Go's encoding/json gives for the usual malformed bodies."""
    if error.pos >= len(text):
        return "unexpected end of JSON input"
    char = text[error.pos]
    if error.msg.startswith("Expecting property name"):
        return f"invalid character '{char}' looking for beginning of object key string"
    if error.msg.startswith("Expecting value"):
        return f"invalid character '{char}' looking for beginning of value"
    return f"invalid character '{char}' after top-level value" if error.msg == "Extra data" else error.msg


class MembersHandler:
    """Serves ``/v2/members[/...]`` for ``server`` (an EtcdServer)."""

    def __init__(self, server) -> None:
        self.server = server

    def member_json(self, member) -> dict:
        return {
            "id": f"{member.id:x}",
            "name": member.name,
            "peerURLs": list(member.peer_urls),
            "clientURLs": list(member.client_urls),
        }

    def _json(self, body, status: int, headers: dict) -> web.Response:
        headers = {**headers, "Content-Type": "application/json"}
        return web.Response(body=(go_json(body) + "\n").encode(), status=status, headers=headers)

    async def handle(self, request: web.Request) -> web.Response:
        method = request.method
        if method not in ("GET", "POST", "DELETE", "PUT"):
            return method_not_allowed("GET,POST,DELETE,PUT")
        headers = {"X-Etcd-Cluster-Id": f"{self.server.cluster_id:x}", "Content-Type": "application/json"}
        tail = request.match_info.get("tail", "")
        if method == "GET":
            return self._get(tail, headers)
        if method == "POST":
            body = await self._peer_urls(request, headers)
            if isinstance(body, web.Response):
                return body
            try:
                member, _ = await self.server.add_member(body)
            except errors.EtcdError as error:
                return self._change_failed(error, tail, headers)
            return self._json(self.member_json(member), 201, headers)
        if not tail:
            return method_not_allowed(None, {"X-Etcd-Cluster-Id": headers["X-Etcd-Cluster-Id"]})
        member_id = self._member_id(tail)
        if member_id is not None and member_id in self.server.removed:
            return _message(f"Member permanently removed: {tail}", 410, headers)
        if member_id is None or member_id not in self.server.members:
            return _message(f"No such member: {tail}", 404, headers)
        try:
            if method == "PUT":
                body = await self._peer_urls(request, headers)
                if isinstance(body, web.Response):
                    return body
                await self.server.update_member(member_id, body)
            else:
                await self.server.remove_member(member_id)
        except errors.EtcdError as error:
            return self._change_failed(error, tail, headers)
        return web.Response(status=204, headers={"X-Etcd-Cluster-Id": headers["X-Etcd-Cluster-Id"]})

    def _change_failed(self, error: errors.EtcdError, tail: str, headers: dict) -> web.Response:
        """etcd's answers: conflicts 409, a vanished member 404, anything else (no quorum of started
        members, a timeout) a bare 500."""
        if error.message in _CONFLICTS:
            return _message(_CONFLICTS[error.message], 409, headers)
        if error.message == errors.member_not_found().message:
            return _message(f"No such member: {tail}", 404, headers)
        return _message("Internal Server Error", 500, headers)

    def _get(self, tail: str, headers: dict) -> web.Response:
        if tail == "leader":
            leader = self.server.members.get(self.server.leader_id())
            if leader is None:
                return _message("During election", 503, headers)
            return self._json(self.member_json(leader), 200, headers)
        if tail:
            return _message("Not found", 404, headers)
        members = sorted(self.server.members.values(), key=lambda m: m.id)
        return self._json({"members": [self.member_json(m) for m in members]}, 200, headers)

    def _member_id(self, id_text: str) -> int | None:
        try:
            return int(id_text, 16)
        except ValueError:
            return None

    async def _peer_urls(self, request: web.Request, headers: dict) -> list[str] | web.Response:
        content_type = request.headers.get("Content-Type", "")
        if ";" in content_type:
            content_type = content_type.split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            return _message(f"Bad Content-Type {content_type}, accept application/json", 415, headers)
        text = (await request.read()).decode("utf-8", "replace")
        try:
            body = json.loads(text)
        except json.JSONDecodeError as error:
            return _message(_go_json_error(error, text), 400, headers)
        try:
            urls = _peer_urls_field(body)
            if not urls:
                return _message("no valid URLs given", 400, headers)
            return [validate_url(u) for u in urls]
        except ValueError as error:
            return _message(str(error), 400, headers)


_GO_STRUCT = 'struct { PeerURLs []string "json:\\"peerURLs\\"" }'


def _go_kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def _peer_urls_field(body) -> list[str]:
    """``peerURLs`` as Go's encoding/json fills etcd's request struct: the key matched without regard to
    case, null as nothing, and Go's message for a value of another JSON type (ValueError)."""
    if body is None:
        return []
    if not isinstance(body, dict):
        raise ValueError(f"json: cannot unmarshal {_go_kind(body)} into Go value of type {_GO_STRUCT}")
    urls = body.get("peerURLs")
    if urls is None:
        urls = next((v for k, v in body.items() if k.lower() == "peerurls"), None)
    if urls is None:
        return []
    field = "Go struct field .peerURLs of type"
    if not isinstance(urls, list):
        raise ValueError(f"json: cannot unmarshal {_go_kind(urls)} into {field} []string")
    for url in urls:
        if url is not None and not isinstance(url, str):
            raise ValueError(f"json: cannot unmarshal {_go_kind(url)} into {field} string")
    return ["" if url is None else url for url in urls]

"""fleet's HTTP API v1 on the wire, as pure functions: the JSON entities of schema/v1.json, request bodies
decoded the way Go's ``encoding/json`` decodes them, the page token of api/pagination.go and the error
entity of api/serialization.go. No I/O here; ``flotilla.fleet.api`` serves these.

Entities keep the field order Go's generated schema types marshal in, and omit empty fields as their
``omitempty`` tags do (a unit without a target has no ``machineID``, an empty page is ``{}``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flotilla.fleet.model import Machine, UnitState
from flotilla.units import Option, parse_unit_text_fleet

__all__ = [
    "BodyError",
    "MetadataOp",
    "PageToken",
    "PageTokenError",
    "UnitRequest",
    "error_body",
    "go_json",
    "go_quote",
    "machine_entity",
    "options_entities",
    "paginate",
    "parse_metadata_patch",
    "parse_unit_request",
    "state_entity",
    "token_from_query",
    "unit_entity",
]

_UINT16_MAX = 0xFFFF
# api/machines.go: the machine ID is anything up to a slash, the key a conservative charset.
_METADATA_PATH = re.compile(r"/([^/]+)/metadata/([A-Za-z0-9_.-]+)")
_PATCH_OPS = ("add", "remove", "replace")


class BodyError(ValueError):
    """A request body that cannot be decoded; the message is what the client gets with a 400."""


class PageTokenError(ValueError):
    """A ``nextPageToken`` the server did not issue; the message is what the client gets with a 400."""


# ---------------------------------------------------------------------------------------------- encoding


def go_json(value: Any) -> bytes:
    """Compact JSON as Go's ``json.Marshal`` writes it: UTF-8 as is, but ``< > &`` and U+2028/U+2029
    escaped (Go escapes them so JSON can be embedded in HTML; clients comparing bytes see the same)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escape)
    return text.encode("utf-8", "surrogatepass")


def go_quote(text: str) -> str:
    """Go's ``%q`` for the names fleet quotes in its messages."""
    return json.dumps(text, ensure_ascii=False)


def error_body(code: int, message: str) -> bytes:
    """fleet's error entity; ``message`` is always present, empty when fleet has nothing to say."""
    return go_json({"error": {"code": code, "message": message}})


def _omit_empty(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    return {key: value for key, value in pairs if value not in (None, "", [], {})}


@lru_cache(maxsize=4096)
def _options_of(text: str) -> tuple[tuple[str, str, str], ...]:
    # Unit text is immutable per hash, so parsing once per text is enough; this runs on every list.
    return tuple((o.section, o.name, o.value) for o in parse_unit_text_fleet(text).options)


def options_entities(text: str) -> list[dict[str, str]]:
    """A unit text as fleet's ``[{name, section, value}]`` list (go-systemd's options, in file order)."""
    return [_omit_empty((("name", n), ("section", s), ("value", v))) for s, n, v in _options_of(text)]


def unit_entity(
    name: str,
    text: str,
    desired_state: str,
    *,
    current_state: str | None,
    machine_id: str | None,
    unschedulable_reason: str | None = None,
) -> dict[str, Any]:
    """fleet's Unit. ``unschedulableReason`` is ours: why the engine cannot place the unit (fleet #1348)."""
    return _omit_empty(
        (
            ("currentState", current_state),
            ("desiredState", desired_state),
            ("machineID", machine_id),
            ("name", name),
            ("options", options_entities(text)),
            ("unschedulableReason", unschedulable_reason),
        )
    )


def state_entity(state: UnitState) -> dict[str, str]:
    return _omit_empty(
        (
            ("hash", state.hash),
            ("machineID", state.machine_id),
            ("name", state.name),
            ("systemdActiveState", state.active_state),
            ("systemdLoadState", state.load_state),
            ("systemdSubState", state.sub_state),
        )
    )


def machine_entity(machine: Machine) -> dict[str, Any]:
    metadata = {key: machine.metadata[key] for key in sorted(machine.metadata)}  # Go sorts map keys
    return _omit_empty((("id", machine.id), ("metadata", metadata), ("primaryIP", machine.public_ip)))


# ---------------------------------------------------------------------------------------------- pages


@dataclass(frozen=True)
class PageToken:
    """fleet's page token: base64url (padded) of little-endian ``{Limit uint16, Page uint16}``."""

    limit: int
    page: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(struct.pack("<HH", self.limit, self.page)).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> PageToken:
        try:
            # As Go's base64.URLEncoding: padding required, only the URL alphabet, CR and LF skipped.
            clean = text.replace("\r", "").replace("\n", "")
            if "+" in clean or "/" in clean:
                raise ValueError("standard alphabet")
            raw = base64.b64decode(clean.translate(str.maketrans("-_", "+/")), validate=True)
        except (binascii.Error, ValueError):
            raise PageTokenError(
                f"nextPageToken {text!r} is not base64url; pass back the token of the previous page as is"
            ) from None
        if len(raw) < 4:
            raise PageTokenError(f"nextPageToken {text!r} is too short; pass back a token the server issued")
        limit, page = struct.unpack_from("<HH", raw)
        return cls(limit, page)


def token_from_query(values: Sequence[str], limit: int) -> PageToken:
    """The page a request asks for (``nextPageToken`` query values), checked as fleet checks it."""
    if len(values) > 1:
        raise PageTokenError("too many values for page token")
    if not values:
        return PageToken(limit, 1)
    token = PageToken.decode(values[0])
    if token.limit != limit:
        raise PageTokenError(f"token limit must be {limit}")
    if token.page == 0:
        raise PageTokenError("token page must be greater than zero")
    return token


def paginate(items: Sequence[Any], token: PageToken) -> tuple[Sequence[Any], PageToken | None]:
    """One page and the token of the next. As in fleet, a page that ends exactly at the last item still
    gets a next token (whose page is empty); only a short page is known to be the last."""
    start, stop = (token.page - 1) * token.limit, token.page * token.limit
    if start >= len(items):
        return [], None
    if stop > len(items) or token.page == _UINT16_MAX:
        return items[start:stop], None
    return items[start:stop], PageToken(token.limit, token.page + 1)


# ---------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class UnitRequest:
    """The parts of a PUT body fleet reads: the name (may be empty), options, desired state."""

    name: str
    options: tuple[Option, ...]
    desired_state: str


def _decode_first_value(body: bytes) -> Any:
    # Go's json.Decoder reads one value and leaves the rest unread: trailing bytes are not an error.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BodyError(f"body is not UTF-8 (byte {error.start}); send JSON text") from None
    stripped = text.lstrip(" \t\r\n")
    if not stripped:
        raise BodyError("EOF: the body is empty; send a JSON object")
    try:
        value, _ = json.JSONDecoder().raw_decode(stripped)
    except json.JSONDecodeError as error:
        raise BodyError(f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    return value


def _go_fields(obj: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Go's struct decoding of ``obj``: keys match field names case-insensitively, unknown keys are
    ignored, ``null`` leaves a field empty."""
    wanted = {name.casefold(): name for name in names}
    found: dict[str, Any] = {}
    for key, value in obj.items():
        name = wanted.get(key.casefold())
        if name is not None and value is not None:
            found[name] = value
    return found


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BodyError(f"{where} must be a string, got {type(value).__name__} {json.dumps(value)[:40]}")
    return value


def parse_unit_request(body: bytes) -> UnitRequest:
    """Decode a PUT /units/{name} body (schema.Unit); BodyError says what is wrong and where."""
    value = _decode_first_value(body)
    if value is None:
        return UnitRequest("", (), "")
    if not isinstance(value, dict):
        raise BodyError(f"the body must be a JSON object (a Unit), got {type(value).__name__}")
    fields = _go_fields(value, ("name", "options", "desiredState"))
    options_value = fields.get("options", [])
    if not isinstance(options_value, list):
        raise BodyError("Unit.options must be an array of {section, name, value} objects")
    options = []
    for index, item in enumerate(options_value):
        if not isinstance(item, dict):
            raise BodyError(f"Unit.options[{index}] must be a {{section, name, value}} object")
        option = _go_fields(item, ("section", "name", "value"))
        options.append(
            Option(
                _string(option.get("section", ""), f"Unit.options[{index}].section"),
                _string(option.get("name", ""), f"Unit.options[{index}].name"),
                _string(option.get("value", ""), f"Unit.options[{index}].value"),
            )
        )
    return UnitRequest(
        _string(fields.get("name", ""), "Unit.name"),
        tuple(options),
        _string(fields.get("desiredState", ""), "Unit.desiredState"),
    )


@dataclass(frozen=True)
class MetadataOp:
    """One checked JSON-Patch operation on ``/<machine_id>/metadata/<key>``; ``value`` None removes."""

    machine_id: str
    key: str
    value: str | None


def parse_metadata_patch(body: bytes) -> list[MetadataOp]:
    """Decode and check a PATCH /machines body; every operation is checked before any is applied, as in
    fleet. The value may be a string (as fleet's docs write it) or ``{"value": "..."}`` (as its code
    reads it)."""
    value = _decode_first_value(body)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BodyError(f"the body must be a JSON-Patch array of operations, got {type(value).__name__}")
    ops = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise BodyError(f"operation {index} must be an object {{op, path, value}}")
        fields = _go_fields(item, ("op", "path", "value"))
        op = fields.get("op", "")
        if op not in _PATCH_OPS:
            raise BodyError("invalid op: expect add, remove, or replace")
        match = (
            _METADATA_PATH.fullmatch(fields.get("path", "")) if isinstance(fields.get("path"), str) else None
        )
        if match is None:
            raise BodyError("machine metadata path invalid")
        raw = fields.get("value", "")
        if isinstance(raw, dict):
            raw = _go_fields(raw, ("value",)).get("value", "")
        new_value = _string(raw, f"operation {index} value")
        if op != "remove" and not new_value:
            raise BodyError("invalid value: add and replace require a value")
        ops.append(MetadataOp(match.group(1), match.group(2), None if op == "remove" else new_value))
    return ops

"""A v2 keys request as etcd 3.4 reads it: Go's form parsing and etcd's parameter rules, without I/O.

etcd reads parameters with Go's ``Request.ParseForm``: an url-encoded body (only for POST, PUT and
PATCH, only with ``Content-Type: application/x-www-form-urlencoded``) comes first, then the query string;
a name given in both takes the body's value. A JSON body is ignored. Parse errors are Go's messages,
answered as error 210 (Invalid POST form); each parameter's own error has its own code (etcd's
``parseKeyRequest``). The result is the ``etcdserverpb.Request`` that goes through raft.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from flotilla.etcd.api import etcdserver_pb2
from flotilla.v2store import ErrorCode, V2Error

__all__ = ["KeyRequest", "GoFormError", "clean_path", "parse_form", "parse_key_request", "parse_query"]

MAX_FORM_BYTES = 10 << 20  # Go's limit on an url-encoded body
_HEX = frozenset(b"0123456789abcdefABCDEF")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class GoFormError(ValueError):
    """A form Go's parser refuses; ``str()`` is Go's message."""


@dataclass
class KeyRequest:
    """A parsed /v2/keys request: what goes through raft, and the one option only the response uses."""

    request: etcdserver_pb2.Request
    no_value_on_success: bool = False
    form: dict[str, list[str]] = field(default_factory=dict)


def _unescape(text: str) -> str:
    """Go's url.QueryUnescape: ``+`` is a space, ``%XX`` a byte; a bad escape is an error. Bytes that are
    not UTF-8 become U+FFFD (what etcd's JSON shows for them)."""
    if "%" not in text and "+" not in text and text.isascii():
        return text
    raw = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x25:  # %
            if i + 2 >= len(raw) or raw[i + 1] not in _HEX or raw[i + 2] not in _HEX:
                bad = raw[i : i + 3].decode("utf-8", "replace")
                raise GoFormError(f'invalid URL escape "{bad}"')
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
            continue
        out.append(0x20 if c == 0x2B else c)
        i += 1
    return out.decode("utf-8", "replace")


def parse_query(query: str, into: dict[str, list[str]]) -> GoFormError | None:
    """Add the pairs of ``query`` to ``into`` as Go's url.ParseQuery does; return its error (the first
    bad escape, or a semicolon separator), having still added every good pair."""
    error: GoFormError | None = None
    for part in query.split("&"):
        if ";" in part:
            error = GoFormError("invalid semicolon separator in query")
            continue
        if not part:
            continue
        key, _, value = part.partition("=")
        try:
            key, value = _unescape(key), _unescape(value)
        except GoFormError as e:
            error = error or e
            continue
        into.setdefault(key, []).append(value)
    return error


def _media_type(content_type: str) -> str:
    """mime.ParseMediaType's media type; its errors for the malformed headers curl users send."""
    media = content_type.split(";", 1)[0].strip().lower()
    if not media:
        raise GoFormError("mime: no media type")
    if "/" not in media:
        raise GoFormError("mime: expected slash after first token")
    return media


def parse_form(method: str, query: str, content_type: str | None, body: bytes) -> dict[str, list[str]]:
    """Go's Request.ParseForm: the url-encoded body's values, then the query's. Raises the first error."""
    error: GoFormError | None = None
    form: dict[str, list[str]] = {}
    if method in ("POST", "PUT", "PATCH"):
        try:
            media = _media_type(content_type or "application/octet-stream")
        except GoFormError as e:
            error, media = e, ""
        if media == "application/x-www-form-urlencoded":
            if len(body) > MAX_FORM_BYTES:
                error = GoFormError("http: POST too large")
            else:
                error = parse_query(body.decode("utf-8", "surrogateescape"), form)
    query_error = parse_query(query, form)
    error = error or query_error
    if error is not None:
        raise error
    return form


def clean_path(path: str) -> str:
    """Go's ServeMux path cleaning (path.Clean, keeping a trailing slash): a request whose path differs
    is redirected to the cleaned one with a 301."""
    cleaned = "/" + posixpath.normpath("/" + path).lstrip("/")  # POSIX keeps a leading "//"; Go does not
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def _first(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""


def _uint(form: dict[str, list[str]], name: str, code: ErrorCode) -> int:
    values = form.get(name)
    if values is None:
        return 0
    text = values[0]
    if not text.isascii() or not text.isdigit() or int(text) >= 1 << 64:
        raise V2Error(code, f'invalid value for "{name}"', 0)
    return int(text)


def _bool(form: dict[str, list[str]], name: str, cause: str | None = None) -> bool:
    values = form.get(name)
    if values is None:
        return False
    text = values[0]
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise V2Error(ErrorCode.INVALID_FIELD, cause or f'invalid value for "{name}"', 0)


def parse_key_request(method: str, key: str, form: dict[str, list[str]], now_ns: int) -> KeyRequest:
    """etcd's parseKeyRequest: ``key`` is the path after /v2/keys; raises V2Error with etcd's code and
    cause for the first bad parameter, in etcd's order."""
    prev_index = _uint(form, "prevIndex", ErrorCode.INDEX_NAN)
    wait_index = _uint(form, "waitIndex", ErrorCode.INDEX_NAN)
    recursive = _bool(form, "recursive")
    sort = _bool(form, "sorted")
    wait = _bool(form, "wait")
    is_dir = _bool(form, "dir")
    quorum = _bool(form, "quorum")
    stream = _bool(form, "stream")
    if wait and method != "GET":
        raise V2Error(ErrorCode.INVALID_FIELD, '"wait" can only be used with GET requests', 0)
    prev_value = _first(form, "prevValue")
    if "prevValue" in form and prev_value == "":
        raise V2Error(ErrorCode.PREV_VALUE_REQUIRED, '"prevValue" cannot be empty', 0)
    no_value_on_success = _bool(form, "noValueOnSuccess")
    ttl: int | None = None
    if _first(form, "ttl"):  # an empty ttl= is no TTL: on update it makes the key permanent
        ttl = _uint(form, "ttl", ErrorCode.TTL_NAN)
    request = etcdserver_pb2.Request(
        Method=method,
        Path=_join_key(key),
        Val=_first(form, "value"),
        Dir=is_dir,
        PrevValue=prev_value,
        PrevIndex=prev_index,
        Wait=wait,
        Since=wait_index,
        Recursive=recursive,
        Sorted=sort,
        Quorum=quorum,
        Stream=stream,
    )
    if "prevExist" in form:
        request.PrevExist = _bool(form, "prevExist", "invalid value for prevExist")
    if "refresh" in form:
        request.Refresh = _bool(form, "refresh", "invalid value for refresh")
        if request.Refresh:
            if _first(form, "value") != "":
                raise V2Error(ErrorCode.REFRESH_VALUE, "A value was provided on a refresh", 0)
            if ttl is None:
                raise V2Error(ErrorCode.REFRESH_TTL_REQUIRED, "No TTL value set", 0)
    if ttl is not None:
        # Go's Duration(ttl) * Second and UnixNano() wrap around int64: a huge ttl gives an expiry before
        # 2000 (a permanent key on set/create) or in the past, as etcd stores it, not an overflow.
        request.Expiration = _int64(now_ns + ttl * 1_000_000_000)
    return KeyRequest(request, no_value_on_success, form)


def _int64(value: int) -> int:
    return (value + (1 << 63)) % (1 << 64) - (1 << 63)


def _join_key(key: str) -> str:
    # Go's path.Join("/", key): cleaned, no trailing slash.
    cleaned = clean_path("/" + key)
    return cleaned.rstrip("/") or "/"

"""The v2 differential runner: sends a case (a list of steps, see ``v2diff_cases``) to one member over
plain HTTP, records every response, and normalizes the record so two members' records can be compared
field by field.

A record is one dict per response: ``status``, the selected ``headers`` (values, or ``True`` where only
presence matters) and the ``body`` (parsed JSON, a list of JSON events for streams, or text).

Normalized, because it legitimately differs between two members:
- every index (``modifiedIndex``, ``createdIndex``, ``index``, ``X-Etcd-Index``, in-order key names, the
  indexes inside 101 and 401 causes) becomes ``i+N``: its offset from the first non-zero index the case
  saw. Offsets, not raw values, because two stores start at different indexes; offsets, not ranks,
  because a server that skips or repeats an index must still show. 0 (parameter errors) stays 0;
- ``expiration`` becomes ``<expiration>`` when it is an RFC 3339 UTC time that lies ``ttl`` seconds after
  the response (within 2 s), else ``<bad expiration ...>``;
- the member's own client/peer URLs, member and cluster IDs, times and durations in stats;
- listings whose order etcd leaves arbitrary (no ``sorted=true``) are sorted by key.
Compared with a tolerance: ``ttl`` values within 1 (the clocks tick independently).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

REQUEST_TIMEOUT_S = 5.0
WATCH_TIMEOUT_S = 10.0
VALUE_HEADERS = (
    "Content-Type",
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Allow",
    "Location",
)
PRESENCE_HEADERS = ("X-Etcd-Cluster-Id", "X-Raft-Index", "X-Raft-Term", "X-Content-Type-Options")
INDEX_FIELDS = {"modifiedIndex", "createdIndex", "index", "oldestIndex"}
_TEMPLATE = re.compile(r"\{(P|mod|created|idx)([+-]\d+)?\}")
_IN_ORDER_NAME = re.compile(r"(?<=/)\d{20}(?=/|$)")
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?Z$")
_CAUSE_101 = re.compile(r"\[(\d+) != (\d+)\]$")
_CAUSE_401 = re.compile(r"^(the requested history has been cleared \[)(\d+)/(\d+)(\])$")
_ASCII_PRINTABLE = "".join(chr(c) for c in range(33, 127))
_HEX_ID = re.compile(r"^[0-9a-f]{1,16}$")


# --- steps ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Req:
    """One HTTP request. ``path``: relative (``"k"`` is ``/v2/keys<prefix>/k``, ``""`` the prefix itself)
    or absolute (``"/v2/..."``); ``{P}`` in any string is the case prefix and ``{mod}``, ``{created}``,
    ``{idx}`` (optionally ``{mod+1}``...) the last modifiedIndex/createdIndex/X-Etcd-Index the case saw.
    ``query``/``form``: a dict (encoded) or a str (sent raw). ``bg``: run in the background under that
    name once the response headers are in (a watch is registered by then); ``Await`` records it.
    ``events``: for a stream, how many events to read before closing. ``stats``: for /v2/stats/store,
    ``"base"`` takes the counters (recording their types), ``"delta"`` records their change since the
    base (but getsFail), ``"delta_all"`` with getsFail, ``"shape"`` records their types."""

    method: str
    path: str = ""
    query: dict | str | None = None
    form: dict | str | None = None
    headers: dict = field(default_factory=dict)
    bg: str | None = None
    events: int = 0
    stats: str | None = None
    only_prefix: bool = False


@dataclass(frozen=True)
class Await:
    """Record the background request ``name``; ``pending`` if it has not answered within ``timeout_s``."""

    name: str
    timeout_s: float = 5.0


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Repeat:
    """Send ``req`` ``n`` times (``{i}`` in strings is the iteration) from ``workers`` connections;
    records how many answers had each status."""

    req: Req
    n: int
    workers: int = 8


@dataclass
class Side:
    """A member as the runner sees it: its client endpoint, peer URL and a label."""

    kind: str
    endpoint: str
    peer_url: str = ""

    @property
    def host_port(self) -> str:
        return self.endpoint.split("//", 1)[1]


# --- sending -----------------------------------------------------------------------------------------
@dataclass
class _Raw:
    status: int
    headers: dict
    body: object
    at: float
    request: str


class _Context:
    def __init__(self, side: Side, prefix: str) -> None:
        self.side = side
        self.prefix = prefix
        self.last = {"mod": 0, "created": 0, "idx": 0}
        self.stats_base: dict = {}
        self.background: dict[str, tuple[threading.Thread, list]] = {}

    def fill(self, text: str, i: int | None = None) -> str:
        def sub(m: re.Match) -> str:
            if m.group(1) == "P":
                return self.prefix
            return str(self.last[m.group(1)] + int(m.group(2) or 0))

        text = _TEMPLATE.sub(sub, text)
        return text.replace("{i}", str(i)) if i is not None else text

    def observe(self, raw: _Raw) -> None:
        if (raw.headers.get("X-Etcd-Index") or "0") != "0":
            self.last["idx"] = int(raw.headers["X-Etcd-Index"])
        body = raw.body
        if isinstance(body, list) and body:
            body = body[-1]
        if isinstance(body, dict) and isinstance(body.get("node"), dict):
            node = body["node"]
            for name, key in (("mod", "modifiedIndex"), ("created", "createdIndex")):
                if isinstance(node.get(key), int):
                    self.last[name] = node[key]


def _encode(ctx: _Context, value, i: int | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ctx.fill(value, i)
    return urllib.parse.urlencode({k: ctx.fill(str(v), i) for k, v in value.items()})


def _target(ctx: _Context, req: Req, i: int | None = None) -> str:
    # non-ASCII in a path goes out percent-encoded (UTF-8), as curl and the Go client send it
    path = urllib.parse.quote(ctx.fill(req.path, i), safe=_ASCII_PRINTABLE)
    if not path.startswith("/"):
        path = "/v2/keys" + ctx.prefix + ("/" + path if path else "")
    query = _encode(ctx, req.query, i)
    return path + ("?" + query if query is not None else "")


def _send(ctx: _Context, req: Req, conn=None, i: int | None = None, started=None, events=None) -> _Raw:
    target = _target(ctx, req, i)
    body = _encode(ctx, req.form, i)
    headers = {k: ctx.fill(v) for k, v in req.headers.items()}
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    own = conn is None
    conn = conn or http.client.HTTPConnection(ctx.side.host_port, timeout=REQUEST_TIMEOUT_S)
    try:
        conn.request(req.method, target, body=body.encode() if body is not None else None, headers=headers)
        response = conn.getresponse()
        if started is not None:
            started.set()
        headers_in = {k: response.getheader(k) for k in (*VALUE_HEADERS, *PRESENCE_HEADERS, "X-Etcd-Index")}
        if req.events:
            payload = _read_events(response, req.events, [] if events is None else events)
        else:
            payload = _parse(response.read())
        return _Raw(response.status, headers_in, payload, time.time(), f"{req.method} {target} {body or ''}")
    finally:
        if own or req.events:
            conn.close()


def _read_events(response, count: int, events: list) -> list:
    while len(events) < count:
        line = response.readline()
        if not line:
            break
        if line.strip():
            events.append(_parse(line))
    return events


def _parse(data: bytes):
    text = data.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _start_background(ctx: _Context, req: Req) -> None:
    started = threading.Event()
    box: list = []
    events: list = []
    conn = http.client.HTTPConnection(ctx.side.host_port, timeout=WATCH_TIMEOUT_S)

    def run() -> None:
        try:
            box.append(_send(ctx, req, conn=conn, started=started, events=events))
        except Exception as error:  # noqa: BLE001 - a closed watch fails inside http.client in many ways
            box.append(error)
            started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not started.wait(REQUEST_TIMEOUT_S):
        box.append(TimeoutError("no response headers"))
    ctx.background[req.bg] = (thread, box, conn, events)


def _await(ctx: _Context, step: Await) -> object:
    """The background request's response, or ``"pending"`` with the stream events read so far (its
    connection is then closed, so the server drops the watcher before the next step)."""
    thread, box, conn, events = ctx.background.pop(step.name)
    thread.join(step.timeout_s)
    if box:
        conn.close()
        return box[0]
    read_so_far = list(events)
    _close_pending(thread, conn)
    return {"pending": True, "events read": read_so_far} if read_so_far else "pending"


def _close_pending(thread: threading.Thread, conn) -> None:
    # shutdown, not close: the reader thread is blocked on the socket and must see EOF to finish
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(2)
        except OSError:
            pass
    conn.close()
    thread.join(REQUEST_TIMEOUT_S)


def _repeat(ctx: _Context, step: Repeat) -> dict:
    local = threading.local()

    def one(i: int) -> int:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(ctx.side.host_port, timeout=REQUEST_TIMEOUT_S)
        try:
            return _send(ctx, step.req, conn=local.conn, i=i).status
        except (OSError, http.client.HTTPException):
            local.conn.close()
            local.conn = http.client.HTTPConnection(ctx.side.host_port, timeout=REQUEST_TIMEOUT_S)
            return -1

    with ThreadPoolExecutor(step.workers) as pool:
        statuses = Counter(pool.map(one, range(step.n)))
    return {"repeat": step.n, "statuses": dict(sorted(statuses.items()))}


def _stats_view(ctx: _Context, which: str, body: dict) -> dict:
    if which == "base":
        ctx.stats_base = dict(body)
    if which in ("base", "shape"):
        return {k: type(v).__name__ for k, v in body.items()}
    # etcd 3.4 counts a failed get of its auth flag in every keys request: only "delta_all" shows it
    skip = () if which == "delta_all" else ("getsFail",)
    return {k: v - ctx.stats_base.get(k, 0) for k, v in body.items() if isinstance(v, int) and k not in skip}


def run_case(side: Side, prefix: str, steps) -> list:
    """Send ``steps`` to ``side`` under key ``prefix``; returns the raw record (one entry per response,
    ``Sleep`` records nothing). Connection errors are recorded, not raised: they are differences too."""
    ctx = _Context(side, prefix)
    record = []
    for step in steps:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            continue
        if isinstance(step, Repeat):
            record.append(("repeat", _repeat(ctx, step)))
            continue
        if isinstance(step, Await):
            entry = _await(ctx, step)
            record.append(("await", entry if not isinstance(entry, Exception) else repr(entry)))
            if isinstance(entry, _Raw):
                ctx.observe(entry)
            continue
        if step.bg:
            _start_background(ctx, step)
            continue
        try:
            raw = _send(ctx, step)
        except (OSError, http.client.HTTPException) as error:
            record.append(("error", f"{step.method} {_target(ctx, step)}: {error!r}"))
            continue
        ctx.observe(raw)
        if step.stats and isinstance(raw.body, dict):
            raw.body = _stats_view(ctx, step.stats, raw.body)
        record.append(("http", raw, step))
    for thread, _box, conn, _events in ctx.background.values():
        _close_pending(thread, conn)
    return record


# --- normalizing -------------------------------------------------------------------------------------
class _Indexes:
    def __init__(self) -> None:
        self.base: int | None = None

    def __call__(self, value) -> object:
        try:
            number = int(value)
        except (TypeError, ValueError):
            return f"<not an index: {value!r}>"
        if number == 0:
            return 0
        if self.base is None:
            self.base = number
        return f"i{number - self.base:+d}"


def normalize(side: Side, record: list, prefix: str) -> list:
    """The comparable form of a record from ``run_case``."""
    indexes = _Indexes()
    out = []
    for entry in record:
        kind = entry[0]
        if kind == "http":
            out.append(_normalize_raw(side, entry[1], entry[2], indexes, prefix))
        elif kind == "await" and isinstance(entry[1], _Raw):
            out.append(_normalize_raw(side, entry[1], Req("GET"), indexes, prefix))
        elif kind == "await" and isinstance(entry[1], dict):
            events = _walk(entry[1]["events read"], side, indexes, time.time(), False, False)
            out.append({"await": "pending", "events read": events})
        else:
            out.append({kind: entry[1]})
    return out


def _normalize_raw(side: Side, raw: _Raw, req: Req, indexes: _Indexes, prefix: str) -> dict:
    headers = {}
    for name in VALUE_HEADERS:
        if raw.headers.get(name) is not None:
            headers[name] = _mask_urls(side, raw.headers[name])
    for name in PRESENCE_HEADERS:
        if raw.headers.get(name) is not None:
            headers[name] = True
    if raw.headers.get("X-Etcd-Index") is not None:
        headers["X-Etcd-Index"] = indexes(raw.headers["X-Etcd-Index"])
    query = req.query if isinstance(req.query, dict) else {}
    keep_order = str(query.get("sorted", "")).lower() in ("true", "1", "t")
    shape_only = raw.request.split(" ")[1].split("?")[0] in ("/v2/stats/self", "/v2/stats/leader")
    body = _walk(raw.body, side, indexes, raw.at, keep_order, shape_only)
    if req.only_prefix and isinstance(body, dict):
        _filter_prefix(body, prefix)
    return {"request": raw.request, "status": raw.status, "headers": headers, "body": body}


def _filter_prefix(body: dict, prefix: str) -> None:
    node = body.get("node")
    if isinstance(node, dict) and isinstance(node.get("nodes"), list):
        node["nodes"] = [n for n in node["nodes"] if str(n.get("key", "")).startswith(prefix)]


def _walk(value, side: Side, indexes: _Indexes, at: float, keep_order: bool, shape_only: bool):
    if isinstance(value, list):
        return [_walk(v, side, indexes, at, keep_order, shape_only) for v in value]
    if isinstance(value, str):
        return _mask_urls(side, value)
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if shape_only and key not in ("state", "name", "leaderInfo", "followers", "latency", "counts"):
            out[key] = type(item).__name__
        elif key in INDEX_FIELDS and isinstance(item, int):
            out[key] = indexes(item)
        elif key == "key" and isinstance(item, str):
            out[key] = _IN_ORDER_NAME.sub(lambda m: f"<{indexes(m.group(0))}>", item)
        elif key == "expiration":
            out[key] = _check_expiration(item, value.get("ttl"), at)
        elif key == "cause" and isinstance(item, str):
            out[key] = _normalize_cause(value.get("errorCode"), item, indexes)
        elif key in ("id", "leader") and isinstance(item, str) and _HEX_ID.match(item):
            out[key] = "<id>"
        elif key == "nodes" and isinstance(item, list) and not keep_order:
            nodes = _walk(item, side, indexes, at, keep_order, shape_only)
            out[key] = sorted(nodes, key=lambda n: str(n.get("key")) if isinstance(n, dict) else str(n))
        elif key == "followers" and isinstance(item, dict):
            # follower IDs differ between clusters: keep how many there are and their shapes
            out[key] = [_walk(v, side, indexes, at, keep_order, True) for v in item.values()]
        else:
            out[key] = _walk(item, side, indexes, at, keep_order, shape_only)
    return out


def _normalize_cause(code, cause: str, indexes: _Indexes) -> str:
    if code == 101:
        return _CAUSE_101.sub(lambda m: f"[{indexes(m.group(1))} != {indexes(m.group(2))}]", cause)
    if code == 401:
        m = _CAUSE_401.match(cause)
        if m:
            return f"{m.group(1)}{indexes(m.group(2))}/{indexes(m.group(3))}{m.group(4)}"
    return cause


def _check_expiration(value, ttl, at: float) -> str:
    m = _RFC3339.match(value) if isinstance(value, str) else None
    if not m:
        return f"<bad expiration {value!r}: not RFC 3339 UTC>"
    when = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    when += float("0" + m.group(2)) if m.group(2) else 0.0
    # no ttl: expiring now (etcd omits a ttl that rounded to 0)
    if abs((when - at) - (ttl if isinstance(ttl, int) else 0)) > 2.0:
        return f"<bad expiration {value!r}: {when - at:.1f}s away, ttl {ttl}>"
    return "<expiration>"


def _mask_urls(side: Side, text: str) -> str:
    text = text.replace(side.endpoint, "<client>")
    return text.replace(side.peer_url, "<peer>") if side.peer_url else text


# --- comparing ---------------------------------------------------------------------------------------
def compare(expected: list, actual: list, *, extension_401: bool) -> list[str]:
    """Differences between two normalized records (``expected`` from etcd), as readable lines. With
    ``extension_401``, ``actual``'s 401 errors must carry ``oldestIndex`` (our documented extension),
    which is then ignored."""
    diffs: list[str] = []
    if len(expected) != len(actual):
        diffs.append(f"record lengths differ: etcd {len(expected)} responses, other {len(actual)}")
    for n, (want, got) in enumerate(zip(expected, actual, strict=False)):
        request = want.get("request", "") if isinstance(want, dict) else ""
        where = f"response {n} ({request!r})"
        if extension_401:
            got = _strip_401_extension(got, diffs, where)
        _diff(want, got, where, diffs)
    return diffs


def _strip_401_extension(got, diffs: list, where: str):
    body = got.get("body") if isinstance(got, dict) else None
    if isinstance(body, dict) and body.get("errorCode") == 401:
        if "oldestIndex" not in body:
            diffs.append(f"{where}: body: the 401 error lacks our oldestIndex extension")
        got = {**got, "body": {k: v for k, v in body.items() if k != "oldestIndex"}}
    return got


def _diff(want, got, path: str, diffs: list) -> None:
    if isinstance(want, dict) and isinstance(got, dict):
        for key in sorted(set(want) | set(got), key=str):
            if key == "request":
                continue
            if key not in got:
                diffs.append(f"{path}.{key}: missing (etcd: {want[key]!r})")
            elif key not in want:
                diffs.append(f"{path}.{key}: unexpected {got[key]!r} (etcd has no such field)")
            elif key == "ttl" and isinstance(want[key], int) and isinstance(got[key], int):
                if abs(want[key] - got[key]) > 1:
                    diffs.append(f"{path}.ttl: etcd {want[key]}, other {got[key]}")
            else:
                _diff(want[key], got[key], f"{path}.{key}", diffs)
    elif isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (a, b) in enumerate(zip(want, got, strict=True)):
            _diff(a, b, f"{path}[{i}]", diffs)
    elif want != got or type(want) is not type(got):
        diffs.append(f"{path}: etcd {want!r}, other {got!r}")

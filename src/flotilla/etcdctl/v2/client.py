"""The HTTP side of etcdctl 3.4's v2 verbs: etcd's Go v2 client (``client/``) redone with the standard
library — endpoints tried in order, 5xx answers and dial failures collected into one cluster error,
the per-request header timeout, the command's total deadline, redirects, ``--debug`` cURL lines — with
the error texts etcdctl prints."""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import socket
import sys
import time
from urllib.parse import urlsplit

from flotilla.gotext import go_quote

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~13 ms per run)
if TYPE_CHECKING:
    import http.client
    import ssl

__all__ = [
    "ClientError",
    "Client",
    "ClusterError",
    "DeadlineExceeded",
    "EtcdError",
    "HTTPAnswer",
    "NO_ENDPOINTS",
    "Request",
    "canonical_path",
    "decode_json",
]

CLUSTER_UNAVAILABLE = "client: etcd cluster is unavailable or misconfigured"
NO_ENDPOINTS = "client: no endpoints available"
_HTTP_STATUS_TEXT = {501: "Not Implemented", 502: "Bad Gateway", 504: "Gateway Timeout"}


class ClientError(Exception):
    """An error the v2 client returns; ``str()`` is the Go client's ``Error()`` text.
    ``connection`` marks dial/read failures and timeouts (etcdctl's isConnectionError)."""

    def __init__(self, message: str, connection: bool = False) -> None:
        super().__init__(message)
        self.connection = connection


class DeadlineExceeded(ClientError):
    """The command's ``--total-timeout`` passed."""

    def __init__(self) -> None:
        super().__init__("context deadline exceeded", connection=True)


class ClusterError(ClientError):
    """No endpoint answered: one error per endpoint tried, as the Go client's ClusterError."""

    def __init__(self, errors: list[ClientError]) -> None:
        text = CLUSTER_UNAVAILABLE + "".join(f"; error #{i}: {e}\n" for i, e in enumerate(errors))
        super().__init__(text, connection=all(e.connection for e in errors))
        self.errors = errors

    def detail(self) -> str:
        return "".join(f"error #{i}: {e}\n" for i, e in enumerate(self.errors))


class EtcdError(ClientError):
    """An error body from the keys API: ``100: Key not found (/foo) [12]``."""

    def __init__(self, body: dict) -> None:
        self.code = body.get("errorCode", 0)
        self.cause = body.get("cause", "")
        self.index = body.get("index", 0)
        self.error_message = body.get("message", "")
        super().__init__(f"{self.code}: {self.error_message} ({self.cause}) [{self.index}]")


# Plain classes rather than dataclasses: every etcdctl run pays its imports (dataclasses costs ~25 ms).


class Request:
    """One HTTP request relative to an endpoint: ``path`` is joined to the endpoint's path; ``wait``
    marks a watch (no header timeout)."""

    def __init__(
        self,
        method: str,
        path: str,
        query: str = "",
        body: bytes | None = None,
        content_type: str | None = None,
        wait: bool = False,
    ) -> None:
        self.method, self.path, self.query, self.body = method, path, query, body
        self.content_type, self.wait = content_type, wait


class HTTPAnswer:
    """A response: status, headers (lower-case names) and the whole body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, endpoint: str = "") -> None:
        self.status, self.headers, self.body, self.endpoint = status, headers, body, endpoint


class Client:
    """The v2 client: ``endpoints`` are URLs; the first that answers without a 5xx wins and stays
    pinned. ``deadline`` (time.monotonic) bounds every request when set."""

    def __init__(
        self,
        endpoints: list[str],
        header_timeout_s: float = 2.0,
        dial_timeout_s: float = 30.0,
        auth: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.header_timeout_s = header_timeout_s
        self.dial_timeout_s = dial_timeout_s
        self.auth = auth
        self.tls = tls
        self.debug = False
        self.deadline: float | None = None
        self.pinned = 0

    def do(self, request: Request, one_shot: bool = False) -> HTTPAnswer:
        """Send ``request`` to the endpoints in turn. A one-shot request (create, delete) stops at the
        first failure and returns that error alone, as the Go client does for non-idempotent calls."""
        if not self.endpoints:
            raise ClientError(NO_ENDPOINTS)
        errors: list[ClientError] = []
        count = len(self.endpoints)
        for i in range(self.pinned, self.pinned + count):
            k = i % count
            endpoint = self.endpoints[k]
            try:
                answer = self.send_to(endpoint, request)
            except DeadlineExceeded:
                raise
            except ClientError as exc:
                errors.append(exc)
                failure = exc
            else:
                if answer.status // 100 != 5:
                    self.pinned = k
                    return answer
                if answer.status in (500, 503):
                    failure = ClientError(f"client: etcd member {endpoint} has no leader")
                else:
                    text = _http_status_text(answer.status)
                    failure = ClientError(f"client: etcd member {endpoint} returns server error [{text}]")
                errors.append(failure)
                failure = errors[0]
            if one_shot:
                self.pinned = (k + 1) % count
                raise failure
        raise ClusterError(errors)

    def send_to(self, endpoint: str, request: Request) -> HTTPAnswer:
        """``request`` to one endpoint, following redirects; any status is an answer."""
        url = _join(endpoint, request.path, request.query)
        for hop in range(100):
            if hop > 10:
                raise ClientError("client: too many redirects")
            answer = self._send(endpoint, url, request)
            if answer.status // 100 != 3:
                return answer
            location = answer.headers.get("location", "")
            if not location:
                raise ClientError("location header not set")
            url = location
        raise ClientError("client: too many redirect checks")  # unreachable: checkRedirect stops at 11

    def _send(self, endpoint: str, url: str, request: Request) -> HTTPAnswer:
        import http.client  # only verbs that talk to a member pay for it

        if self.debug:
            line = f"curl -X {request.method} {url}"
            if request.body is not None:
                line += f" -d {go_quote(request.body.decode('utf-8', 'replace'))}"
            print(f"cURL Command: {line}", file=sys.stderr)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ClientError(f'unsupported protocol scheme "{parts.scheme}"')
        header_timeout = None if request.wait or self.header_timeout_s <= 0 else self.header_timeout_s
        timeout = self._bounded(header_timeout)
        try:
            sock = _dial(parts, self._bounded(self.dial_timeout_s), self.tls)
        except TimeoutError:
            self._check_deadline()
            raise ClientError(f"dial tcp {parts.netloc}: i/o timeout", connection=True) from None
        connection = _connection_for(parts, sock)
        headers = {}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        if self.auth is not None:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            sock.settimeout(timeout)
            connection.request(request.method, target or "/", body=request.body, headers=headers)
            response = connection.getresponse()
            sock.settimeout(self._bounded(None))
            body = response.read()
        except TimeoutError:
            self._check_deadline()
            raise ClientError(f"client: endpoint {endpoint} exceeded header timeout") from None
        except OSError as exc:
            self._check_deadline()
            raise ClientError(f"read tcp {parts.netloc}: {_strerror(exc)}", connection=True) from None
        except http.client.HTTPException as exc:
            raise ClientError(f"net/http: {exc}") from None
        finally:
            connection.close()
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        return HTTPAnswer(response.status, answer_headers, body, endpoint)

    def _bounded(self, timeout: float | None) -> float | None:
        if self.deadline is None:
            return timeout
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded()
        return remaining if timeout is None else min(timeout, remaining)

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline - 0.005:
            raise DeadlineExceeded()


def _http_status_text(status: int) -> str:
    import http.client

    return _HTTP_STATUS_TEXT.get(status, http.client.responses.get(status, ""))


def _join(endpoint: str, path: str, query: str) -> str:
    parts = urlsplit(endpoint)
    full = canonical_path(parts.path + path)
    return f"{parts.scheme}://{parts.netloc}{_escape_path(full)}" + (f"?{query}" if query else "")


def canonical_path(path: str) -> str:
    """etcd's pathutil.CanonicalURLPath: a cleaned absolute path that keeps a trailing slash."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    parts: list[str] = []
    for piece in path.split("/"):
        if piece in ("", "."):
            continue
        if piece == "..":
            if parts:
                parts.pop()
            continue
        parts.append(piece)
    cleaned = "/" + "/".join(parts)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


_PATH_SAFE = re.compile(r"[A-Za-z0-9\-_.~$&+,/:;=@]")


def _escape_path(path: str) -> str:
    # Go's url.URL.EscapedPath for a path without a raw form.
    out = []
    for char in path:
        if _PATH_SAFE.fullmatch(char):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogateescape"))
    return "".join(out)


def _dial(parts, timeout: float | None, tls: ssl.SSLContext | None) -> socket.socket:
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ClientError(f"dial tcp: lookup {host}: no such host", connection=True) from None
    last = ""
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            shown = (
                f"[{address[0]}]:{address[1]}" if family == socket.AF_INET6 else f"{address[0]}:{address[1]}"
            )
            last = f"dial tcp {shown}: connect: {_strerror(exc)}"
            continue
        if tls is not None and parts.scheme == "https":
            return _handshake(tls, sock, host)
        return sock
    raise ClientError(last or f"dial tcp: lookup {host}: no such host", connection=True)


def _handshake(tls: ssl.SSLContext, sock: socket.socket, host: str) -> socket.socket:
    import ssl

    try:
        return tls.wrap_socket(sock, server_hostname=host)
    except ssl.SSLError as exc:
        sock.close()
        # a plain-HTTP server ends the handshake: Go's TLS client reports io.EOF
        if exc.reason in ("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING", "RECORD_LAYER_FAILURE"):
            raise ClientError("EOF") from None
        raise ClientError(f"tls: {exc.reason or exc}") from None
    except OSError as exc:
        sock.close()
        raise ClientError(f"read tcp {host}: {_strerror(exc)}", connection=True) from None


def _connection_for(parts, sock: socket.socket) -> http.client.HTTPConnection:
    import http.client

    connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
    connection.sock = sock  # already dialled (and wrapped for TLS): http.client only speaks HTTP on it
    return connection


def _strerror(exc: OSError) -> str:
    # Go prints errno texts in lower case ("connection refused").
    if exc.errno is not None:
        text = os.strerror(exc.errno)
        return text[:1].lower() + text[1:]
    if isinstance(exc, ConnectionResetError):
        return os.strerror(errno.ECONNRESET).lower()
    return str(exc) or "EOF"


def decode_json(body: bytes) -> object:
    """Parse a JSON body; invalid UTF-8 becomes U+FFFD as Go's decoder makes it."""
    return json.loads(body.decode("utf-8", "replace"))

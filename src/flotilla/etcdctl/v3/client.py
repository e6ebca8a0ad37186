"""The gRPC client behind the verbs, behaving like etcd 3.4's clientv3 where etcdctl shows it.

clientv3 waits for a connection until the call's deadline (it does not fail fast), logs every failed
unary call as a zap ``warn`` line on stderr (its retry interceptor), and turns gRPC errors into Go error
text: ``etcdserver: ...`` for the server's known errors, ``context deadline exceeded`` for timeouts,
``rpc error: code = X desc = Y`` for the rest.
"""

from __future__ import annotations

import datetime
import json
import queue
import sys
import uuid
from dataclasses import dataclass

import grpc

from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc
from flotilla.etcdctl.v3.errors import EXIT_ERROR, fail

_NEVER_CONNECTED = "latest balancer error: all SubConns are in TransientFailure"

# etcd 3.4's rpctypes: a server error with one of these descriptions reaches the user as its bare text.
_KNOWN_SUFFIXES = (
    "Peer URLs already exists",
    "authentication failed, invalid user ID or password",
    "authentication is not enabled",
    "bad leader transferee",
    "can only promote a learner member",
    "can only promote a learner member which is in sync with leader",
    "corrupt cluster",
    "duplicate key given in txn request",
    "given member URLs are invalid",
    "invalid auth management",
    "invalid auth token",
    "key is not provided",
    "key not found",
    "leader changed",
    "lease already exists",
    "lease is provided",
    "member ID already exist",
    "member not found",
    "mvcc: database space exceeded",
    "mvcc: required revision has been compacted",
    "mvcc: required revision is a future revision",
    "no leader",
    "not capable",
    "not leader",
    "permission denied",
    "permission is not granted to the role",
    "re-configuration failed due to not enough started members",
    "request is too large",
    "request timed out",
    "request timed out, possibly due to connection lost",
    "request timed out, possibly due to previous leader failure",
    "request timed out, waiting for the applied index took too long",
    "requested lease not found",
    "revision of auth store is old",
    "role is not granted to the user",
    "role name already exists",
    "role name is empty",
    "role name not found",
    "root user does not exist",
    "root user does not have root role",
    "rpc not supported for learner",
    "server stopped",
    "too large lease TTL",
    "too many learner members in cluster",
    "too many operations in txn request",
    "too many requests",
    "unhealthy cluster",
    "user name already exists",
    "user name is empty",
    "user name not found",
    "value is provided",
    "watch canceled",
)
KNOWN_ERRORS = frozenset("etcdserver: " + s for s in _KNOWN_SUFFIXES)


@dataclass
class ClientConfig:
    """What the global flags say about connecting (durations in seconds)."""

    endpoints: list[str]
    dial_timeout_s: float = 2.0
    command_timeout_s: float = 5.0
    keepalive_time_s: float = 2.0
    keepalive_timeout_s: float = 6.0
    insecure_transport: bool = True
    insecure_skip_verify: bool = False
    cacert: str = ""
    cert: str = ""
    key: str = ""
    user: str = ""
    password: str = ""


class RPCFailed(Exception):
    """A failed call; ``str()`` is the Go error text clientv3 would return."""

    def __init__(self, text: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(text)
        self.code = code


class RequestQueue:
    """The request side of a bidirectional stream: pass the queue itself as the request iterator; what
    ``put`` queues goes out in order, ``end()`` half-closes the stream."""

    def __init__(self) -> None:
        self._items: queue.Queue = queue.Queue()

    def __iter__(self):
        while (item := self._items.get()) is not None:
            yield item

    def put(self, request) -> None:
        self._items.put(request)

    def end(self) -> None:
        self._items.put(None)


def host_of(endpoint: str) -> str:
    """The dial address of an endpoint: clientv3 drops ``http://``/``https://``."""
    for scheme in ("http://", "https://", "unix://", "unixs://"):
        if endpoint.startswith(scheme):
            return endpoint[len(scheme) :]
    return endpoint


def go_code_name(code: grpc.StatusCode) -> str:
    """grpc-go's name of a status code: ``NOT_FOUND`` -> ``NotFound``."""
    if code is grpc.StatusCode.CANCELLED:
        return "Canceled"
    return "".join(part.capitalize() for part in code.name.split("_"))


def warn(target: str, error_text: str) -> None:
    """clientv3's retry interceptor log line (zap JSON on stderr)."""
    now = datetime.datetime.now().astimezone()
    offset = now.strftime("%z")
    zone = "Z" if offset in ("+0000", "-0000") else offset
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}" + zone
    fields = {
        "level": "warn",
        "ts": stamp,
        "caller": "clientv3/retry_interceptor.go:62",
        "msg": "retrying of unary invoker failed",
        "target": target,
        "attempt": 0,
        "error": error_text,
    }
    sys.stderr.write(json.dumps(fields, separators=(",", ":"), ensure_ascii=False) + "\n")
    sys.stderr.flush()


class Client:
    """One connection to the cluster (``passthrough`` dials a single endpoint, as Maintenance calls do)."""

    def __init__(self, config: ClientConfig, endpoints: list[str] | None = None, passthrough: bool = False):
        self.config = config
        self.endpoints = list(endpoints if endpoints is not None else config.endpoints)
        first = host_of(self.endpoints[0]) if self.endpoints else ""
        self.passthrough = passthrough
        self.target = (
            f"passthrough:///{first}" if passthrough else f"endpoint://client-{uuid.uuid4()}/{first}"
        )
        self.channel = self._dial()
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.lease = rpc_pb2_grpc.LeaseStub(self.channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(self.channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)
        self.auth = rpc_pb2_grpc.AuthStub(self.channel)
        self.metadata: list[tuple[str, str]] = []

    def _dial(self) -> grpc.Channel:
        hosts = [host_of(e) for e in self.endpoints]
        if len(hosts) > 1 and all(_is_ipv4_address(h) for h in hosts):
            target = "ipv4:" + ",".join(hosts)
        else:
            target = hosts[0] if hosts else ""
        options = [
            ("grpc.max_receive_message_length", 2**31 - 1),
            ("grpc.max_send_message_length", 2 * 1024 * 1024 + 512 * 1024),
            ("grpc.keepalive_time_ms", int(self.config.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.config.keepalive_timeout_s * 1000)),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        if self._wants_tls():
            return grpc.secure_channel(target, self._credentials(), options)
        return grpc.insecure_channel(target, options)

    def _wants_tls(self) -> bool:
        c = self.config
        if any(e.startswith("https://") for e in self.endpoints):
            return True
        return bool(c.cacert or c.cert or c.key) or not c.insecure_transport

    def _credentials(self) -> grpc.ChannelCredentials:
        c = self.config

        def read(path: str) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as f:
                return f.read()

        return grpc.ssl_channel_credentials(read(c.cacert), read(c.key), read(c.cert))

    def _reachable(self) -> bool:
        # Was the deadline spent waiting for a connection (grpc-go: a balancer error) or for the server?
        try:
            grpc.channel_ready_future(self.channel).result(timeout=0.2)
            return True
        except grpc.FutureTimeoutError:
            return False

    def close(self) -> None:
        self.channel.close()

    def call(self, method, request, timeout_s: float | None = None, log: bool = True):
        """A unary call that waits for a connection until ``timeout_s`` (None: forever)."""
        try:
            return method(request, timeout=timeout_s, wait_for_ready=True, metadata=self.metadata or None)
        except grpc.RpcError as e:
            raise self.failure(e, log) from None

    def call_or_exit(self, method, request, timeout_s: float | None, code: int = EXIT_ERROR, what: str = ""):
        """``call``, or etcdctl's ExitWithError(``code``) with the error's text (``what (error)``, if set)."""
        try:
            return self.call(method, request, timeout_s)
        except RPCFailed as e:
            fail(code, f"{what} ({e})" if what else str(e))

    def failure(self, e: grpc.RpcError, log: bool = True) -> RPCFailed:
        """The Go error text for ``e``; unary failures are logged first, as clientv3 does."""
        code = e.code()
        details = e.details() or ""
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            if not self._reachable():
                details = _NEVER_CONNECTED
                if self.passthrough:
                    details = (
                        'latest balancer error: connection error: desc = "transport: Error while dialing '
                        f'dial tcp {host_of(self.endpoints[0])}: connect: connection refused"'
                    )
            else:
                details = "context deadline exceeded"
        wire = f"rpc error: code = {go_code_name(code)} desc = {details}"
        if log:
            warn(self.target, wire)
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return RPCFailed("context deadline exceeded", code)
        if code is grpc.StatusCode.CANCELLED:
            return RPCFailed("context canceled", code)
        if details in KNOWN_ERRORS:
            return RPCFailed(details, code)
        return RPCFailed(wire, code)

    def authenticate(self) -> None:
        """clientv3.New with a user: get a token; a cluster without auth is fine (ErrAuthNotEnabled)."""
        c = self.config
        if not c.user:
            return
        request = rpc_pb2.AuthenticateRequest(name=c.user, password=c.password)
        try:
            resp = self.call(self.auth.Authenticate, request, self.config.dial_timeout_s, log=False)
        except RPCFailed as e:
            if str(e) == "etcdserver: authentication is not enabled":
                return
            raise
        self.metadata = [("token", resp.token)]


def _is_ipv4_address(host: str) -> bool:
    address, _, port = host.rpartition(":")
    parts = address.split(".")
    return port.isdigit() and len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)

"""What can go wrong talking to an etcd v3 cluster, as one exception tree.

    ClientError                      any failed call: .operation, .endpoint, .code, .details
    ├── Unavailable                  no member could serve the call before its deadline
    │   └── NoLeader                 the member answered "etcdserver: no leader"
    ├── DeadlineExceeded             the call's own deadline passed
    ├── Compacted                    the revision asked for was compacted (.compact_revision)
    ├── FutureRevision               the revision asked for is beyond the store's
    ├── LeaseNotFound                the lease expired or was revoked (.lease_id)
    ├── AuthError                    authentication failed or the token is invalid
    │   └── PermissionDenied         the user's roles do not allow the call
    ├── NoSpace                      the store is over its quota (an alarm is raised)
    └── InvalidRequest               the server refused the request as malformed

Messages say which call failed, on which endpoint, what the server said, and what to do about it.
``from_rpc_error`` maps a gRPC status to this tree by etcd 3.4's error strings (``rpctypes``).
"""

from __future__ import annotations

import grpc

__all__ = [
    "AuthError",
    "ClientError",
    "Compacted",
    "DeadlineExceeded",
    "FutureRevision",
    "InvalidRequest",
    "LeaseNotFound",
    "NoLeader",
    "NoSpace",
    "PermissionDenied",
    "Unavailable",
    "from_rpc_error",
]


class ClientError(Exception):
    """A call to the cluster failed. ``operation`` names the call (``put 'a/b'``), ``endpoint`` the
    member that answered (or the last one tried), ``code``/``details`` the gRPC status when there was one."""

    hint = "see that member's log for why it refused the call"

    def __init__(
        self,
        operation: str,
        endpoint: str,
        details: str,
        *,
        code: grpc.StatusCode | None = None,
        hint: str = "",
    ) -> None:
        self.operation = operation
        self.endpoint = endpoint
        self.details = details
        self.code = code
        text = f"{operation} failed on {endpoint or 'no endpoint'}: {details}"
        advice = hint or self.hint
        super().__init__(f"{text} ({advice})" if advice else text)


class Unavailable(ClientError):
    hint = "check that the etcd members in the endpoint list are running and reachable"


class NoLeader(Unavailable):
    hint = "the member has lost its leader; a majority of the cluster must be up to elect one"


class DeadlineExceeded(ClientError):
    hint = "the cluster did not answer in time; raise the timeout or check the members' health"


class Compacted(ClientError):
    """``compact_revision`` is the oldest revision still available (0 when the server did not say)."""

    hint = "read the current state again and watch from its revision"

    def __init__(self, operation: str, endpoint: str, details: str, *, compact_revision: int = 0, **kw):
        self.compact_revision = compact_revision
        super().__init__(operation, endpoint, details, **kw)


class FutureRevision(ClientError):
    hint = "ask for a revision at or below the store's current revision"


class LeaseNotFound(ClientError):
    """The lease is gone (expired or revoked); keys attached to it were deleted with it."""

    hint = "grant a new lease and write the keys again"

    def __init__(self, operation: str, endpoint: str, details: str, *, lease_id: int = 0, **kw):
        self.lease_id = lease_id
        super().__init__(operation, endpoint, details, **kw)


class AuthError(ClientError):
    hint = "check the username and password given to EtcdClient"


class PermissionDenied(AuthError):
    hint = "grant the user a role that allows this key range"


class NoSpace(ClientError):
    hint = "compact and defragment the store, then disarm the NOSPACE alarm"


class InvalidRequest(ClientError):
    hint = "this is a bug in the caller: fix the request"


# etcd 3.4's error strings (rpctypes) that name a specific condition; anything else maps by status code.
_BY_DETAILS: dict[str, type[ClientError]] = {
    "etcdserver: no leader": NoLeader,
    "etcdserver: mvcc: required revision has been compacted": Compacted,
    "etcdserver: mvcc: required revision is a future revision": FutureRevision,
    "etcdserver: requested lease not found": LeaseNotFound,
    "etcdserver: mvcc: database space exceeded": NoSpace,
    "etcdserver: permission denied": PermissionDenied,
    "etcdserver: authentication failed, invalid user ID or password": AuthError,
    "etcdserver: invalid auth token": AuthError,
    "etcdserver: user name is empty": AuthError,
}

_BY_CODE: dict[grpc.StatusCode, type[ClientError]] = {
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAUTHENTICATED: AuthError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.RESOURCE_EXHAUSTED: NoSpace,
}


def from_rpc_error(error: grpc.aio.AioRpcError, operation: str, endpoint: str, *, lease_id: int = 0):
    """The ClientError for a failed gRPC call (``operation`` on ``endpoint``)."""
    code = error.code()
    details = error.details() or code.name
    cls = _BY_DETAILS.get(details) or _BY_CODE.get(code, ClientError)
    if cls is LeaseNotFound:
        return LeaseNotFound(operation, endpoint, details, lease_id=lease_id, code=code)
    return cls(operation, endpoint, details, code=code)

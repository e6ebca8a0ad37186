"""The member's errors: each carries the gRPC status code and the message etcd 3.4 sends for it.

Clients match on these strings (etcd's ``rpctypes``), so the messages are etcd's, word for word. The gRPC
layer aborts with ``code`` and ``message``; the JSON gateway turns the code into an HTTP status.
"""

from __future__ import annotations

import grpc

__all__ = [
    "EtcdError",
    "compacted",
    "duplicate_key",
    "empty_key",
    "future_revision",
    "lease_exists",
    "lease_not_found",
    "lease_ttl_too_large",
    "no_leader",
    "no_space",
    "not_capable",
    "request_too_large",
    "stopped",
    "timeout",
    "too_many_ops",
]


class EtcdError(Exception):
    """An error a client sees: a gRPC status code and etcd's message for it."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_C = grpc.StatusCode


def _error(code: grpc.StatusCode, message: str):
    def make() -> EtcdError:
        return EtcdError(code, message)

    make.__doc__ = f"{code.name}: {message}"
    return make


empty_key = _error(_C.INVALID_ARGUMENT, "etcdserver: key is not provided")
too_many_ops = _error(_C.INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
duplicate_key = _error(_C.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
request_too_large = _error(_C.INVALID_ARGUMENT, "etcdserver: request is too large")
value_provided = _error(_C.INVALID_ARGUMENT, "etcdserver: value is provided")
lease_provided = _error(_C.INVALID_ARGUMENT, "etcdserver: lease is provided")
key_not_found = _error(_C.INVALID_ARGUMENT, "etcdserver: key not found")
compacted = _error(_C.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
future_revision = _error(_C.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")
no_space = _error(_C.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
lease_not_found = _error(_C.NOT_FOUND, "etcdserver: requested lease not found")
lease_exists = _error(_C.FAILED_PRECONDITION, "etcdserver: lease already exists")
lease_ttl_too_large = _error(_C.OUT_OF_RANGE, "etcdserver: too large lease TTL")
member_not_found = _error(_C.NOT_FOUND, "etcdserver: member not found")
no_leader = _error(_C.UNAVAILABLE, "etcdserver: no leader")
not_leader = _error(_C.FAILED_PRECONDITION, "etcdserver: not leader")
leader_changed = _error(_C.UNAVAILABLE, "etcdserver: leader changed")
not_capable = _error(_C.UNAVAILABLE, "etcdserver: not capable")
stopped = _error(_C.UNAVAILABLE, "etcdserver: server stopped")
timeout = _error(_C.UNAVAILABLE, "etcdserver: request timed out")
unhealthy = _error(_C.UNAVAILABLE, "etcdserver: unhealthy cluster")
corrupt = _error(_C.DATA_LOSS, "etcdserver: corrupt cluster")
bad_leader_transferee = _error(_C.FAILED_PRECONDITION, "etcdserver: bad leader transferee")
member_exists = _error(_C.FAILED_PRECONDITION, "etcdserver: member ID already exist")
peer_url_exists = _error(_C.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")
member_bad_urls = _error(_C.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid")
not_enough_started = _error(
    _C.FAILED_PRECONDITION, "etcdserver: re-configuration failed due to not enough started members"
)
member_not_learner = _error(_C.FAILED_PRECONDITION, "etcdserver: can only promote a learner member")
learner_not_ready = _error(
    _C.FAILED_PRECONDITION, "etcdserver: can only promote a learner member which is in sync with leader"
)
too_many_learners = _error(_C.FAILED_PRECONDITION, "etcdserver: too many learner members in cluster")
timeout_leader_transfer = _error(
    _C.UNAVAILABLE, "etcdserver: request timed out, leader transfer took too long"
)

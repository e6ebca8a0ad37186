"""Applying a committed v2 request to the v2 store, with etcd 3.4's choice of store operation
(``applierV2store``): the request's method and its prev* fields pick set, create, update, compareAndSwap,
delete or compareAndDelete; SYNC expires TTL nodes at the leader's clock reading carried in the entry,
so every member removes the same nodes at the same point of the log."""

from __future__ import annotations

from flotilla.etcd.api import etcdserver_pb2
from flotilla.v2store import ErrorCode, Event, V2Error, V2Store

__all__ = ["apply_v2_request"]


def apply_v2_request(store: V2Store, r: etcdserver_pb2.Request, now_ns: int) -> Event | list[Event] | V2Error:
    """Apply ``r``; the event it made, the expire events of a SYNC, or the V2Error a client gets."""
    try:
        return _apply(store, r, now_ns)
    except V2Error as error:
        return error


def _apply(store: V2Store, r: etcdserver_pb2.Request, now_ns: int) -> Event | list[Event]:
    method = r.Method
    expire_ns = r.Expiration or None
    refresh = r.HasField("Refresh") and r.Refresh
    if method == "PUT":
        if r.HasField("PrevExist"):
            if r.PrevExist:
                if r.PrevIndex == 0 and r.PrevValue == "":
                    return store.update(
                        r.Path, value=r.Val, expire_ns=expire_ns, refresh=refresh, now_ns=now_ns
                    )
                return _compare_and_swap(store, r, expire_ns, refresh, now_ns)
            return store.create(
                r.Path, dir=r.Dir, value=r.Val, unique=False, expire_ns=expire_ns, now_ns=now_ns
            )
        if r.PrevIndex > 0 or r.PrevValue != "":
            return _compare_and_swap(store, r, expire_ns, refresh, now_ns)
        return store.set(r.Path, dir=r.Dir, value=r.Val, expire_ns=expire_ns, refresh=refresh, now_ns=now_ns)
    if method == "POST":
        return store.create(r.Path, dir=r.Dir, value=r.Val, unique=True, expire_ns=expire_ns, now_ns=now_ns)
    if method == "DELETE":
        if r.PrevIndex > 0 or r.PrevValue != "":
            return store.compare_and_delete(
                r.Path, prev_value=r.PrevValue, prev_index=r.PrevIndex, now_ns=now_ns
            )
        return store.delete(r.Path, dir=r.Dir, recursive=r.Recursive, now_ns=now_ns)
    if method == "QGET":
        return store.get(r.Path, recursive=r.Recursive, sorted=r.Sorted, now_ns=now_ns)
    if method == "SYNC":
        return store.delete_expired(r.Time)
    # Only this member's HTTP layer makes v2 requests; an unknown method (a newer version's entry) fails
    # that request alone instead of the apply loop.
    raise V2Error(ErrorCode.RAFT_INTERNAL, f"unknown v2 request method {method!r}", store.index)


def _compare_and_swap(store: V2Store, r, expire_ns: int | None, refresh: bool, now_ns: int) -> Event:
    return store.compare_and_swap(
        r.Path,
        prev_value=r.PrevValue,
        prev_index=r.PrevIndex,
        value=r.Val,
        expire_ns=expire_ns,
        refresh=refresh,
        now_ns=now_ns,
    )

"""``EtcdClient``: the asyncio etcd v3 client every Flotilla service uses (DESIGN decision 2).

It speaks only the public etcd v3 gRPC API, so a service built on it runs the same on Flotilla's store and
on etcd 3.4. Guarantees callers can rely on (STYLE 6):

- ``create`` is an atomic create (a transaction on ``create_revision == 0``); ``compare_and_swap`` and
  ``compare_and_delete`` are atomic compare-and-set/delete. Use them, not get-then-put, for anything two
  machines may race on (leader election, unit ownership).
- Reads are linearizable unless ``serializable=True`` (then a member may answer from a stale copy).
- Failover: a call that cannot reach a member, or whose member has no leader, goes to the next endpoint
  and is retried until the call's own deadline (``timeout_s``). Idempotent calls (reads, put, delete,
  lease keep-alive/TTL/revoke, status) are also retried when a member fails in the middle of the call;
  transactions and lease grants are not — their outcome is unknown then, and the caller gets
  ``Unavailable``/``DeadlineExceeded`` to decide (re-read and retry).
- Every network wait has a deadline; no call waits forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

from flotilla.client import errors
from flotilla.client._transport import EndpointPool, RetryElsewhere, Stubs, retryable, stream_write
from flotilla.client.keepalive import keep_alive
from flotilla.client.txn import Compare, Op, prefix_range_end, response_from_pb
from flotilla.client.types import (
    DeleteResult,
    KeyValue,
    Lease,
    LeaseInfo,
    Member,
    PutResult,
    RangeResult,
    Status,
    TlsConfig,
    TxnResult,
    to_bytes,
)
from flotilla.client.watch import Watch
from flotilla.etcd.api import rpc_pb2

__all__ = ["EtcdClient"]

T = TypeVar("T")

_AUTH_NOT_ENABLED = "etcdserver: authentication is not enabled"
_INVALID_TOKEN = "etcdserver: invalid auth token"
_MAX_BACKOFF_S = 0.5


def _show(key: bytes) -> str:
    return repr(key.decode(errors="backslashreplace"))


class EtcdClient:
    """A client of one etcd v3 cluster. Use ``async with EtcdClient([...]) as client`` or call ``close()``.

    ``timeout_s`` is each call's deadline unless the call says otherwise; ``tls`` configures https://
    endpoints (and host:port ones); ``username``/``password`` authenticate when the cluster has auth on.
    Channels are opened on first use and belong to that event loop: use a client within one loop, and
    leave ``keep_alive`` blocks and watches before closing it.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout_s: float = 5.0,
        tls: TlsConfig | None = None,
        username: str = "",
        password: str = "",
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e]
        self.timeout_s = timeout_s
        self._pool = EndpointPool(list(endpoints), tls)
        self._username = username
        self._password = password
        self._token = ""
        self._authenticated = not username

    @property
    def endpoints(self) -> list[str]:
        return [e.url for e in self._pool.endpoints]

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        await self._pool.close()

    # --- plumbing shared with watch and keepalive -------------------------------------------------
    @property
    def metadata(self) -> list[tuple[str, str]]:
        # hasleader: a member cut off from its leader refuses the call ("no leader") instead of serving
        # stale data or hanging, so the call moves on (clientv3.WithRequireLeader).
        md = [("hasleader", "true")]
        if self._token:
            md.append(("token", self._token))
        return md

    async def stubs(self, index: int, deadline: float) -> Stubs:
        """The services at endpoint ``index``, authenticated first when the client has a user."""
        stubs = self._pool.stubs(index)
        if not self._authenticated:
            await self._authenticate(stubs, index, deadline)
        return stubs

    async def _authenticate(self, stubs: Stubs, index: int, deadline: float) -> None:
        request = rpc_pb2.AuthenticateRequest(name=self._username, password=self._password)
        timeout = max(deadline - asyncio.get_running_loop().time(), 0.001)
        try:
            response = await stubs.auth.Authenticate(request, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            if e.details() == _AUTH_NOT_ENABLED:
                self._authenticated = True
                return
            raise
        self._token = response.token
        self._authenticated = True

    @property
    def pool(self) -> EndpointPool:
        return self._pool

    async def with_failover(
        self,
        operation: str,
        attempt: Callable[[Stubs, float], Awaitable[T]],
        *,
        idempotent: bool,
        timeout_s: float | None = None,
        lease_id: int = 0,
    ) -> T:
        """Run ``attempt(stubs, attempt_timeout_s)`` on the current endpoint, moving to the next one on a
        retryable failure, until the deadline; failures become ``errors.ClientError``s."""
        loop = asyncio.get_running_loop()
        budget_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = loop.time() + budget_s
        pool = self._pool
        index = pool.current
        failures = 0
        backoff_s = 0.05
        last: tuple[str, grpc.aio.AioRpcError | RetryElsewhere | None] = ("", None)
        reauthenticated = False
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self._exhausted(operation, last, failures, budget_s, lease_id)
            # With other members to try, one slow member must not use up the whole deadline.
            attempt_s = remaining
            if idempotent and len(pool) > 1:
                attempt_s = min(remaining, max(budget_s / len(pool), 1.0))
            url = pool.url(index)
            try:
                stubs = await self.stubs(index, deadline)
                return await attempt(stubs, attempt_s)
            except grpc.aio.AioRpcError as e:
                if e.details() == _INVALID_TOKEN and self._username and not reauthenticated:
                    self._authenticated, self._token, reauthenticated = False, "", True
                    continue
                if not retryable(e, idempotent):
                    raise errors.from_rpc_error(e, operation, url, lease_id=lease_id) from None
                last = (url, e)
            except RetryElsewhere as e:
                if not idempotent:
                    raise errors.Unavailable(operation, url, str(e)) from None
                last = (url, e)
            failures += 1
            index = pool.failed(index)
            if failures % len(pool) == 0:
                # Every member failed once: wait a little (an election takes about a second) and go round.
                await asyncio.sleep(min(backoff_s, max(deadline - loop.time(), 0)))
                backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)

    def _exhausted(self, operation, last, failures, budget_s, lease_id) -> errors.ClientError:
        url, error = last
        what = f"{operation} (gave up after {failures} attempts in {budget_s:g}s)"
        if error is None:
            return errors.DeadlineExceeded(what, self._pool.url(self._pool.current), "no time left")
        if isinstance(error, RetryElsewhere):
            return errors.Unavailable(what, url, str(error))
        return errors.from_rpc_error(error, what, url, lease_id=lease_id)

    async def _unary(self, operation, service, method, request, *, idempotent, timeout_s=None, lease_id=0):
        async def attempt(stubs: Stubs, attempt_s: float):
            return await getattr(getattr(stubs, service), method)(
                request, timeout=attempt_s, metadata=self.metadata
            )

        return await self.with_failover(
            operation, attempt, idempotent=idempotent, timeout_s=timeout_s, lease_id=lease_id
        )

    # --- KV ---------------------------------------------------------------------------------------
    async def range(
        self,
        key: str | bytes,
        range_end: str | bytes = b"",
        *,
        limit: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
        revision: int = 0,
        serializable: bool = False,
        timeout_s: float | None = None,
    ) -> RangeResult:
        """Keys in [key, range_end) (just ``key`` when range_end is empty), in key order."""
        k = to_bytes(key)
        request = rpc_pb2.RangeRequest(
            key=k, range_end=to_bytes(range_end), limit=limit, keys_only=keys_only, count_only=count_only,
            revision=revision, serializable=serializable,
        )  # fmt: skip
        r = await self._unary(
            f"range {_show(k)}", "kv", "Range", request, idempotent=True, timeout_s=timeout_s
        )
        return RangeResult([KeyValue.from_pb(kv) for kv in r.kvs], r.count, r.more, r.header.revision)

    async def get(
        self,
        key: str | bytes,
        *,
        revision: int = 0,
        serializable: bool = False,
        timeout_s: float | None = None,
    ) -> KeyValue | None:
        result = await self.range(key, revision=revision, serializable=serializable, timeout_s=timeout_s)
        return result.kvs[0] if result.kvs else None

    async def get_prefix(
        self,
        prefix: str | bytes,
        *,
        limit: int = 0,
        keys_only: bool = False,
        revision: int = 0,
        serializable: bool = False,
        timeout_s: float | None = None,
    ) -> tuple[list[KeyValue], int]:
        """Every key starting with ``prefix``, in key order, and the revision they were read at."""
        p = to_bytes(prefix)
        result = await self.range(
            p or b"\0", prefix_range_end(p), limit=limit, keys_only=keys_only, revision=revision,
            serializable=serializable, timeout_s=timeout_s,
        )  # fmt: skip
        return result.kvs, result.revision

    async def put(
        self, key: str | bytes, value: str | bytes, *, lease: int = 0, timeout_s: float | None = None
    ) -> int:
        """Write ``key``; returns the revision of the write."""
        return (await self.put_result(key, value, lease=lease, timeout_s=timeout_s)).revision

    async def put_result(
        self,
        key: str | bytes,
        value: str | bytes,
        *,
        lease: int = 0,
        prev_kv: bool = False,
        timeout_s: float | None = None,
    ) -> PutResult:
        """``put`` that can also return the value it replaced."""
        k = to_bytes(key)
        request = rpc_pb2.PutRequest(key=k, value=to_bytes(value, "value"), lease=lease, prev_kv=prev_kv)
        # A repeated put leaves the same value (one more revision): safe to retry after a failure.
        r = await self._unary(
            f"put {_show(k)}", "kv", "Put", request, idempotent=True, timeout_s=timeout_s, lease_id=lease
        )
        prev = KeyValue.from_pb(r.prev_kv) if r.HasField("prev_kv") else None
        return PutResult(r.header.revision, prev)

    async def delete_range(
        self,
        key: str | bytes,
        range_end: str | bytes = b"",
        *,
        prev_kv: bool = False,
        timeout_s: float | None = None,
    ) -> DeleteResult:
        k = to_bytes(key)
        request = rpc_pb2.DeleteRangeRequest(key=k, range_end=to_bytes(range_end), prev_kv=prev_kv)
        r = await self._unary(
            f"delete {_show(k)}", "kv", "DeleteRange", request, idempotent=True, timeout_s=timeout_s
        )
        return DeleteResult(r.header.revision, r.deleted, [KeyValue.from_pb(kv) for kv in r.prev_kvs])

    async def delete(self, key: str | bytes, *, timeout_s: float | None = None) -> int:
        """Delete ``key``; returns how many keys were deleted (0 or 1)."""
        return (await self.delete_range(key, timeout_s=timeout_s)).deleted

    async def delete_prefix(self, prefix: str | bytes, *, timeout_s: float | None = None) -> int:
        p = to_bytes(prefix)
        return (await self.delete_range(p or b"\0", prefix_range_end(p), timeout_s=timeout_s)).deleted

    async def compact(self, revision: int, *, physical: bool = False, timeout_s: float | None = None) -> None:
        """Discard history before ``revision``: older reads and watches raise ``Compacted``."""
        request = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        await self._unary(
            f"compact {revision}", "kv", "Compact", request, idempotent=True, timeout_s=timeout_s
        )

    # --- transactions -----------------------------------------------------------------------------
    async def txn(
        self,
        compare: Sequence[Compare] = (),
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
        *,
        timeout_s: float | None = None,
    ) -> TxnResult:
        """Atomically: if every ``compare`` holds, run ``success``, else ``failure``. Not retried once
        sent (a second run could see the first one's writes), so a failure mid-call leaves the outcome
        unknown: re-read before trying again."""
        request = rpc_pb2.TxnRequest(
            compare=[c.to_pb() for c in compare],
            success=[op.request for op in success],
            failure=[op.request for op in failure],
        )
        keys = ", ".join(_show(c.key) for c in compare) or "no comparison"
        r = await self._unary(f"txn if {keys}", "kv", "Txn", request, idempotent=False, timeout_s=timeout_s)
        revision = r.header.revision
        return TxnResult(r.succeeded, [response_from_pb(op, revision) for op in r.responses], revision)

    async def create(
        self, key: str | bytes, value: str | bytes, *, lease: int = 0, timeout_s: float | None = None
    ) -> bool:
        """Atomic create: write ``key`` only if it does not exist; True when written."""
        result = await self.txn(
            [Compare.create_revision(key) == 0], [Op.put(key, value, lease=lease)], timeout_s=timeout_s
        )
        return result.succeeded

    async def compare_and_swap(
        self,
        key: str | bytes,
        expected_mod_revision: int,
        value: str | bytes,
        *,
        lease: int = 0,
        timeout_s: float | None = None,
    ) -> bool:
        """Atomic compare-and-set: write only if the key's mod_revision is still ``expected_mod_revision``
        (0: the key must not exist); True when written."""
        result = await self.txn(
            [Compare.mod_revision(key) == expected_mod_revision],
            [Op.put(key, value, lease=lease)],
            timeout_s=timeout_s,
        )
        return result.succeeded

    async def compare_and_delete(
        self, key: str | bytes, expected_value: str | bytes, *, timeout_s: float | None = None
    ) -> bool:
        """Atomic compare-and-delete: delete only if the value is still ``expected_value``."""
        result = await self.txn([Compare.value(key) == expected_value], [Op.delete(key)], timeout_s=timeout_s)
        return result.succeeded

    # --- leases -----------------------------------------------------------------------------------
    async def lease_grant(self, ttl_s: int, lease_id: int = 0, *, timeout_s: float | None = None) -> Lease:
        """A new lease of ``ttl_s`` seconds (the server may raise it to its minimum)."""
        request = rpc_pb2.LeaseGrantRequest(TTL=int(ttl_s), ID=lease_id)
        r = await self._unary(
            f"lease grant ttl={ttl_s}s", "lease", "LeaseGrant", request, idempotent=False, timeout_s=timeout_s
        )
        if r.error:
            url = self._pool.url(self._pool.current)
            raise errors.ClientError(f"lease grant ttl={ttl_s}s", url, r.error)
        return Lease(r.ID, r.TTL)

    async def lease_revoke(self, lease_id: int, *, timeout_s: float | None = None) -> None:
        """Revoke the lease and delete its keys. Raises LeaseNotFound if it is already gone (also when an
        earlier attempt of this call revoked it and the answer was lost)."""
        request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        await self._unary(
            f"lease revoke {lease_id:x}", "lease", "LeaseRevoke", request, idempotent=True,
            timeout_s=timeout_s, lease_id=lease_id,
        )  # fmt: skip

    async def lease_time_to_live(
        self, lease_id: int, *, keys: bool = False, timeout_s: float | None = None
    ) -> LeaseInfo:
        operation = f"lease timetolive {lease_id:x}"
        request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        r = await self._unary(
            operation, "lease", "LeaseTimeToLive", request, idempotent=True, timeout_s=timeout_s,
            lease_id=lease_id,
        )  # fmt: skip
        if r.TTL == -1:  # etcd answers an unknown lease with TTL -1 rather than an error
            url = self._pool.url(self._pool.current)
            raise errors.LeaseNotFound(
                operation, url, "etcdserver: requested lease not found", lease_id=lease_id
            )
        return LeaseInfo(r.ID, r.TTL, r.grantedTTL, list(r.keys))

    async def lease_leases(self, *, timeout_s: float | None = None) -> list[int]:
        r = await self._unary(
            "lease list", "lease", "LeaseLeases", rpc_pb2.LeaseLeasesRequest(), idempotent=True,
            timeout_s=timeout_s,
        )  # fmt: skip
        return [lease.ID for lease in r.leases]

    async def lease_keepalive_once(self, lease_id: int, *, timeout_s: float | None = None) -> int:
        """Refresh the lease once; returns its TTL in seconds. Raises LeaseNotFound when it expired."""
        operation = f"lease keepalive {lease_id:x}"

        async def attempt(stubs: Stubs, attempt_s: float) -> int:
            call = stubs.lease.LeaseKeepAlive(timeout=attempt_s, metadata=self.metadata)
            try:
                await stream_write(call, rpc_pb2.LeaseKeepAliveRequest(ID=lease_id), attempt_s)
                response = await call.read()
            finally:
                call.cancel()
            if response is grpc.aio.EOF:
                raise RetryElsewhere("the member closed the keep-alive stream without answering")
            return response.TTL

        ttl = await self.with_failover(
            operation, attempt, idempotent=True, timeout_s=timeout_s, lease_id=lease_id
        )
        if ttl <= 0:
            url = self._pool.url(self._pool.current)
            raise errors.LeaseNotFound(
                operation, url, "etcdserver: requested lease not found", lease_id=lease_id
            )
        return ttl

    def keep_alive(self, lease_id: int, *, ttl_s: float | None = None):
        """``async with client.keep_alive(lease.id) as ka:`` refreshes the lease every ttl/3 in a
        background task until the block ends; ``ka.lost`` is set when the lease expired or could not be
        refreshed before its TTL ran out (then anything held under it must be given up)."""
        return keep_alive(self, lease_id, ttl_s=ttl_s)

    # --- watch ------------------------------------------------------------------------------------
    def watch(
        self,
        key: str | bytes,
        *,
        range_end: str | bytes = b"",
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
    ) -> Watch:
        """Changes to ``key`` (or [key, range_end)) from ``start_revision`` (0: from now), as an async
        iterator of WatchResponse; survives member failures without losing or repeating events."""
        return Watch(
            self, to_bytes(key), to_bytes(range_end), start_revision=start_revision, prev_kv=prev_kv,
            progress_notify=progress_notify,
        )  # fmt: skip

    def watch_prefix(
        self,
        prefix: str | bytes,
        *,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
    ) -> Watch:
        p = to_bytes(prefix)
        return self.watch(
            p or b"\0", range_end=prefix_range_end(p), start_revision=start_revision, prev_kv=prev_kv,
            progress_notify=progress_notify,
        )  # fmt: skip

    # --- cluster and maintenance ------------------------------------------------------------------
    async def status(self, endpoint: str | None = None, *, timeout_s: float | None = None) -> Status:
        """One member's status (``endpoint``: one of the client's endpoints; None: the current one).
        A named endpoint is asked directly, without failover."""
        request = rpc_pb2.StatusRequest()
        if endpoint is None:
            r = await self._unary(
                "status", "maintenance", "Status", request, idempotent=True, timeout_s=timeout_s
            )
            return Status.from_pb(self._pool.url(self._pool.current), r)
        index = self._index_of(endpoint)
        budget_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = asyncio.get_running_loop().time() + budget_s
        try:
            stubs = await self.stubs(index, deadline)
            r = await stubs.maintenance.Status(request, timeout=budget_s, metadata=self.metadata)
        except grpc.aio.AioRpcError as e:
            raise errors.from_rpc_error(e, "status", endpoint) from None
        return Status.from_pb(endpoint, r)

    def _index_of(self, endpoint: str) -> int:
        for i, e in enumerate(self._pool.endpoints):
            if endpoint in (e.url, e.target):
                return i
        raise ValueError(f"status: {endpoint!r} is not one of this client's endpoints {self.endpoints}")

    async def member_list(self, *, timeout_s: float | None = None) -> list[Member]:
        r = await self._unary(
            "member list", "cluster", "MemberList", rpc_pb2.MemberListRequest(), idempotent=True,
            timeout_s=timeout_s,
        )  # fmt: skip
        return [Member.from_pb(m) for m in r.members]

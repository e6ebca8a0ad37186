"""Leases of the v3 keyspace: the lessor (etcd's ``lease/lessor.go``), a core without clocks.

Two kinds of calls, kept apart:

* **Replicated state changes** — ``grant``, ``revoke``, ``attach``, ``detach``, ``checkpoint`` — are made by
  the apply loop of every member, in log order, and change only replicated state (a lease's id, granted TTL,
  last checkpointed remaining TTL, attached keys). They are deterministic; each is recorded for the backend's
  "lease" bucket (``take_changes``).
* **Primary calls** — ``promote``, ``demote``, ``renew``, ``expired``, ``due_checkpoints`` — run on the
  leader only and keep deadlines, which are never replicated. Time comes in as ``now_s``: monotonic seconds
  from the member's driver. The primary turns expiry into ``LeaseRevoke`` proposals and remaining TTLs into
  ``LeaseCheckpoint`` proposals; both come back through the replicated calls.

Why checkpoints: etcd resets every lease to its full TTL when a new leader takes over (issues #9395,
#13294), so a lease that was about to expire lives a whole TTL longer. Here the primary replicates (and the
backend persists) the remaining TTL of long leases, and ``promote`` starts each deadline from it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from flotilla.mvcc.errors import LeaseError, LeaseExistsError, LeaseNotFoundError

NO_LEASE = 0
"""The lease id of a key without a lease (etcd's ``NoLease``); never a valid lease."""

MAX_LEASE_TTL_S = 9_000_000_000
"""etcd's ``MaxLeaseTTL``: a larger TTL is refused."""

_RETRY_S = 3.0  # etcd's expiredLeaseRetryInterval: re-offer a lease whose revoke proposal got lost


class NotPrimaryError(LeaseError):
    """A primary-only call (a keep-alive) reached a member that is not the leader (etcd: ``ErrNotPrimary``,
    "not a primary lessor"); the member forwards keep-alives to the leader."""

    def __init__(self) -> None:
        super().__init__("not a primary lessor")


class LeaseTTLTooLargeError(LeaseError):
    """A grant asked for a TTL above ``MAX_LEASE_TTL_S`` (etcd: "etcdserver: too large lease TTL")."""

    def __init__(self, ttl_s: int) -> None:
        super().__init__(f"too large lease TTL {ttl_s} (the maximum is {MAX_LEASE_TTL_S})")
        self.ttl_s = ttl_s


@dataclass(slots=True, eq=False)
class Lease:
    """The replicated state of one lease. ``ttl_s`` is the granted TTL (after the minimum was applied);
    ``remaining_ttl_s`` the last checkpointed remaining TTL, 0 when none (a new primary then starts the
    lease at its full TTL). ``keys`` are the attached keys. Owned by the lessor: read it, never mutate it."""

    id: int
    ttl_s: int
    remaining_ttl_s: int = 0
    keys: set[bytes] = field(default_factory=set)


class Lessor:
    """All leases of one member. Not thread-safe; one event loop owns it.

    ``min_ttl_s``: a grant with a smaller TTL gets this one (etcd: 1.5 election timeouts, rounded up, so a
    lease outlives a leader election). ``retry_s``: how long an expired lease that was offered for
    revocation waits before ``expired`` offers it again (in case the revoke proposal was lost).
    """

    def __init__(self, min_ttl_s: int = 2, *, retry_s: float = _RETRY_S) -> None:
        if min_ttl_s < 1:
            raise ValueError(f"min_ttl_s must be at least 1, not {min_ttl_s}")
        self.min_ttl_s = min_ttl_s
        self.retry_s = retry_s
        self.is_primary = False
        self._leases: dict[int, Lease] = {}
        self._owner: dict[bytes, int] = {}  # key -> lease it is attached to
        self._changes: list[tuple[int, Lease | None]] = []
        self._now_s = 0.0  # the latest now_s seen; a grant on the primary without now_s starts from it
        self._clear_primary_state()

    def _clear_primary_state(self) -> None:
        self._deadline: dict[int, float] = {}
        # Expiry queue with lazy deletion: an entry (t, id) is live only while self._due[id] == t.
        self._due: dict[int, float] = {}
        self._expiry_heap: list[tuple[float, int]] = []
        # Checkpoint queue, same scheme: (time of last checkpoint or of the baseline, id).
        self._checked_at: dict[int, float] = {}
        self._checkpoint_heap: list[tuple[float, int]] = []
        self._last_sent: dict[int, int] = {}  # remaining TTL last proposed (or known replicated), 0 = none
        self._urgent: dict[int, None] = {}  # renewed leases whose stale checkpoint must be cleared

    # --- replicated state changes -------------------------------------------------------------------
    def grant(self, lease_id: int, ttl_s: int, now_s: float | None = None) -> Lease:
        """Create lease ``lease_id`` with TTL ``max(ttl_s, min_ttl_s)``. On the primary the lease's deadline
        starts at ``now_s`` (or, when omitted, at the latest time this lessor was given); the member may call
        ``renew`` right after to start it exactly now. LeaseNotFoundError for id 0 (as etcd),
        LeaseExistsError, LeaseTTLTooLargeError."""
        if lease_id == NO_LEASE:
            raise LeaseNotFoundError(lease_id)
        if lease_id in self._leases:
            raise LeaseExistsError(lease_id)
        if ttl_s > MAX_LEASE_TTL_S:
            raise LeaseTTLTooLargeError(ttl_s)
        lease = Lease(lease_id, max(ttl_s, self.min_ttl_s))
        self._leases[lease_id] = lease
        self._changes.append((lease_id, lease))
        if self.is_primary:
            now = self._tick(now_s) if now_s is not None else self._now_s
            self._start(lease, now, lease.ttl_s)
        return lease

    def revoke(self, lease_id: int) -> set[bytes]:
        """Remove the lease and return its attached keys, which the member deletes in the same write txn
        (sorted: a set's order differs between processes). LeaseNotFoundError."""
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            raise LeaseNotFoundError(lease_id)
        for key in lease.keys:
            del self._owner[key]
        self._forget_primary_state(lease_id)
        self._changes.append((lease_id, None))
        return lease.keys

    def attach(self, lease_id: int, key: bytes) -> None:
        """Attach ``key`` to the lease; a key attached to another lease moves (a put with a new lease).
        LeaseNotFoundError."""
        lease = self._leases.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError(lease_id)
        previous = self._owner.get(key)
        if previous == lease_id:
            return
        if previous is not None:
            self._leases[previous].keys.discard(key)
        self._owner[key] = lease_id
        lease.keys.add(key)

    def detach(self, lease_id: int, key: bytes) -> None:
        """Detach ``key`` from the lease; a no-op when it is not attached to that lease (or the lease is
        gone)."""
        if self._owner.get(key) != lease_id:
            return
        del self._owner[key]
        self._leases[lease_id].keys.discard(key)

    def checkpoint(self, lease_id: int, remaining_ttl_s: int) -> None:
        """Apply a replicated LeaseCheckpoint: the lease's remaining TTL is ``remaining_ttl_s`` (0 clears
        it: a new primary starts the lease at its full TTL). Ignored for an unknown lease, as etcd does: a
        checkpoint may be applied after the revoke of its lease."""
        lease = self._leases.get(lease_id)
        if lease is None:
            return
        lease.remaining_ttl_s = max(remaining_ttl_s, 0)
        self._changes.append((lease_id, lease))

    def lookup(self, lease_id: int) -> Lease | None:
        return self._leases.get(lease_id)

    def lease_of(self, key: bytes) -> int:
        """The lease ``key`` is attached to, ``NO_LEASE`` when none."""
        return self._owner.get(key, NO_LEASE)

    def leases(self) -> list[Lease]:
        """Every lease, sorted by id."""
        return [self._leases[i] for i in sorted(self._leases)]

    def __len__(self) -> int:
        return len(self._leases)

    def take_changes(self) -> list[tuple[int, Lease | None]]:
        """The backend changes since the last call, in order: ``(id, lease)`` after a grant or checkpoint
        (store ``encode_lease(lease)``), ``(id, None)`` after a revoke (delete the record). Keep-alives are
        not replicated and change nothing here."""
        changes, self._changes = self._changes, []
        return changes

    @classmethod
    def restore(cls, records: Iterable[tuple[bytes, bytes] | bytes | Lease], min_ttl_s: int = 2) -> Lessor:
        """Rebuild from the backend's "lease" bucket: ``(key, encoded lease)`` items as the backend scans
        them (encoded values or Lease objects are accepted too). The result is not primary and has no
        keys attached: the member re-attaches them while it restores the keyspace. TTLs below
        ``min_ttl_s`` are raised to it, as etcd does."""
        lessor = cls(min_ttl_s)
        for record in records:
            if isinstance(record, Lease):
                lease = Lease(record.id, record.ttl_s, record.remaining_ttl_s)
            else:
                lease = decode_lease(record[1] if isinstance(record, tuple) else record)
            lease.ttl_s = max(lease.ttl_s, min_ttl_s)
            lessor._leases[lease.id] = lease
        return lessor

    # --- primary (leader) only, not replicated -------------------------------------------------------
    def promote(self, now_s: float) -> None:
        """Become primary: every lease's deadline is ``now_s`` plus its checkpointed remaining TTL, or its
        full TTL when it has none."""
        now = self._tick(now_s)
        self._clear_primary_state()
        self.is_primary = True
        for lease in self._leases.values():
            self._last_sent[lease.id] = lease.remaining_ttl_s
            self._start(lease, now, lease.remaining_ttl_s or lease.ttl_s)

    def demote(self) -> None:
        """Stop being primary: deadlines are forgotten (leases no longer expire here)."""
        self.is_primary = False
        self._clear_primary_state()

    def renew(self, lease_id: int, now_s: float) -> int:
        """Keep-alive: the lease's deadline becomes ``now_s + ttl_s``; returns ``ttl_s``. NotPrimaryError on
        a non-primary; LeaseNotFoundError for an unknown lease or one whose deadline has passed (its revoke
        is on its way; etcd answers "lease not found" once it lands)."""
        if not self.is_primary:
            raise NotPrimaryError()
        now = self._tick(now_s)
        lease = self._leases.get(lease_id)
        if lease is None or self._deadline[lease_id] <= now:
            raise LeaseNotFoundError(lease_id)
        self._set_deadline(lease_id, now + lease.ttl_s)
        if lease.remaining_ttl_s or self._last_sent.get(lease_id):
            # The replicated remaining TTL is now stale (too short): a new primary would expire the lease
            # early. Clear it at once, as etcd's Renew does.
            self._urgent[lease_id] = None
        return lease.ttl_s

    def remaining_s(self, lease_id: int, now_s: float) -> int:
        """TimeToLive's TTL. On the primary: the whole seconds left, truncated as etcd does (a fresh 10 s
        lease reports 9), and -1 once the deadline has passed (etcdctl prints "already expired"). On a
        non-primary: the checkpointed remaining TTL, else the granted TTL. LeaseNotFoundError."""
        lease = self._leases.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError(lease_id)
        if not self.is_primary:
            return lease.remaining_ttl_s or lease.ttl_s
        left_s = self._deadline[lease_id] - self._tick(now_s)
        return int(left_s) if left_s > 0 else -1

    def expired(self, now_s: float, limit: int = 1000) -> list[int]:
        """Up to ``limit`` ids whose deadline has passed, earliest first, for the member to propose
        revoking. Each is offered once, then again every ``retry_s`` seconds until its revoke is applied
        (the proposal may be lost). Empty on a non-primary."""
        if not self.is_primary:
            return []
        now = self._tick(now_s)
        found: list[int] = []
        heap = self._expiry_heap
        while heap and heap[0][0] <= now and len(found) < limit:
            due, lease_id = heapq.heappop(heap)
            if self._due.get(lease_id) != due:
                continue  # superseded by a renew, a retry or a revoke
            found.append(lease_id)
            self._due[lease_id] = now + self.retry_s
            heapq.heappush(heap, (now + self.retry_s, lease_id))
        return found

    def due_checkpoints(self, now_s: float, interval_s: float, limit: int = 1000) -> list[tuple[int, int]]:
        """Up to ``limit`` ``(id, remaining TTL)`` pairs to replicate as one LeaseCheckpoint proposal.

        First the leases renewed since a non-zero checkpoint, as ``(id, 0)`` (clear: the full TTL applies
        again). Then leases not checkpointed for ``interval_s`` whose remaining TTL (seconds, rounded up, as
        etcd) exceeds ``interval_s`` and differs from the last one sent; shorter leases gain little and
        would cost a proposal per keep-alive, so like etcd they are not checkpointed. Empty on a
        non-primary. Work per call is bounded by the leases examined, O(limit log n) amortized."""
        if not self.is_primary:
            return []
        now = self._tick(now_s)
        due: list[tuple[int, int]] = []
        while self._urgent and len(due) < limit:
            lease_id = next(iter(self._urgent))
            del self._urgent[lease_id]
            due.append((lease_id, 0))
            self._last_sent[lease_id] = 0
        heap = self._checkpoint_heap
        while heap and heap[0][0] <= now - interval_s and len(due) < limit:
            checked_at, lease_id = heapq.heappop(heap)
            if self._checked_at.get(lease_id) != checked_at:
                continue
            self._set_checked_at(lease_id, now)
            left_s = self._deadline[lease_id] - now
            remaining = math.ceil(left_s)
            last = self._last_sent[lease_id] or self._leases[lease_id].ttl_s
            if left_s > interval_s and remaining != last:
                due.append((lease_id, remaining))
                self._last_sent[lease_id] = remaining
        return due

    # --- private -------------------------------------------------------------------------------------
    def _tick(self, now_s: float) -> float:
        self._now_s = max(self._now_s, now_s)
        return now_s

    def _start(self, lease: Lease, now: float, ttl_s: float) -> None:
        self._last_sent.setdefault(lease.id, lease.remaining_ttl_s)
        self._set_deadline(lease.id, now + ttl_s)
        self._set_checked_at(lease.id, now)

    def _set_deadline(self, lease_id: int, deadline: float) -> None:
        self._deadline[lease_id] = deadline
        self._due[lease_id] = deadline
        heapq.heappush(self._expiry_heap, (deadline, lease_id))
        # Renewals leave dead entries behind; rebuild before they outnumber the live ones.
        if len(self._expiry_heap) > 2 * len(self._due) + 64:
            self._expiry_heap = [(t, i) for i, t in self._due.items()]
            heapq.heapify(self._expiry_heap)

    def _set_checked_at(self, lease_id: int, at: float) -> None:
        self._checked_at[lease_id] = at
        heapq.heappush(self._checkpoint_heap, (at, lease_id))
        if len(self._checkpoint_heap) > 2 * len(self._checked_at) + 64:
            self._checkpoint_heap = [(t, i) for i, t in self._checked_at.items()]
            heapq.heapify(self._checkpoint_heap)

    def _forget_primary_state(self, lease_id: int) -> None:
        # Heap entries stay behind; they no longer match the dicts, so they are skipped and rebuilt away.
        for state in (self._deadline, self._due, self._checked_at, self._last_sent, self._urgent):
            state.pop(lease_id, None)


# --- backend records: etcd's leasepb.Lease wire format (ID = 1, TTL = 2, RemainingTTL = 3) -------------
def lease_key(lease_id: int) -> bytes:
    """The lease bucket's key for ``lease_id``: 8 bytes big-endian, as etcd (so keys sort by id)."""
    return (lease_id & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big")


def encode_lease(lease: Lease) -> bytes:
    """The backend record of a lease: the protobuf encoding of etcd's ``leasepb.Lease``, so a "lease"
    bucket reads the same as etcd's. Attached keys are not stored (the keyspace records them)."""
    out = bytearray()
    for tag, value in ((0x08, lease.id), (0x10, lease.ttl_s), (0x18, lease.remaining_ttl_s)):
        if value:
            out.append(tag)
            _put_varint(out, value & 0xFFFF_FFFF_FFFF_FFFF)  # int64: negatives as 64-bit two's complement
    return bytes(out)


def decode_lease(data: bytes) -> Lease:
    """Inverse of ``encode_lease``; skips unknown fields. ValueError on a malformed record."""
    fields = {1: 0, 2: 0, 3: 0}
    pos = 0
    while pos < len(data):
        tag, pos = _get_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, pos = _get_varint(data, pos)
            if value >= 1 << 63:
                value -= 1 << 64
            fields[number] = value
        elif wire_type == 1:
            pos += 8
        elif wire_type == 2:
            size, pos = _get_varint(data, pos)
            pos += size
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"malformed lease record: wire type {wire_type} at byte {pos}")
    if pos != len(data):
        raise ValueError("malformed lease record: truncated")
    return Lease(fields[1], fields[2], fields[3])


def _put_varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _get_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("malformed lease record: bad varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7

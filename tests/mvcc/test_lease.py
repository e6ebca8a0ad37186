"""The lessor (flotilla.mvcc.lease), as etcd's lease/lessor.go behaves — and better on a leader change."""

from __future__ import annotations

import pytest

from flotilla.mvcc.errors import LeaseExistsError, LeaseNotFoundError
from flotilla.mvcc.lease import (
    MAX_LEASE_TTL_S,
    NO_LEASE,
    Lease,
    LeaseTTLTooLargeError,
    Lessor,
    NotPrimaryError,
    decode_lease,
    encode_lease,
    lease_key,
)


def primary(now_s: float = 100.0, min_ttl_s: int = 2) -> Lessor:
    lessor = Lessor(min_ttl_s)
    lessor.promote(now_s)
    return lessor


# --- replicated state ---------------------------------------------------------------------------------
def test_grant_lookup_and_duplicate() -> None:
    lessor = Lessor()
    lease = lessor.grant(7, 10)
    assert (lease.id, lease.ttl_s, lease.remaining_ttl_s, lease.keys) == (7, 10, 0, set())
    assert lessor.lookup(7) is lease and lessor.lookup(8) is None
    with pytest.raises(LeaseExistsError):
        lessor.grant(7, 30)


def test_grant_refuses_no_lease_and_huge_ttl() -> None:
    lessor = Lessor()
    with pytest.raises(LeaseNotFoundError):
        lessor.grant(NO_LEASE, 10)
    with pytest.raises(LeaseTTLTooLargeError):
        lessor.grant(1, MAX_LEASE_TTL_S + 1)


def test_ttl_below_minimum_becomes_minimum() -> None:
    # etcd: `etcdctl lease grant 1` answers "granted with TTL(2s)" with the default election timeout.
    lessor = Lessor(min_ttl_s=2)
    assert lessor.grant(1, 1).ttl_s == 2
    assert lessor.grant(2, 0).ttl_s == 2
    assert lessor.grant(3, 5).ttl_s == 5


def test_attach_detach_revoke_returns_keys() -> None:
    lessor = Lessor()
    lessor.grant(1, 10)
    lessor.attach(1, b"a")
    lessor.attach(1, b"b")
    lessor.detach(1, b"b")
    lessor.detach(1, b"never")  # not attached: no-op
    lessor.detach(99, b"a")  # another lease: no-op
    assert lessor.lookup(1).keys == {b"a"}
    assert lessor.lease_of(b"a") == 1 and lessor.lease_of(b"b") == NO_LEASE
    assert lessor.revoke(1) == {b"a"}
    assert lessor.lookup(1) is None and lessor.lease_of(b"a") == NO_LEASE
    with pytest.raises(LeaseNotFoundError):
        lessor.revoke(1)
    with pytest.raises(LeaseNotFoundError):
        lessor.attach(1, b"a")


def test_attach_moves_a_key_between_leases() -> None:
    lessor = Lessor()
    lessor.grant(1, 10)
    lessor.grant(2, 10)
    lessor.attach(1, b"k")
    lessor.attach(2, b"k")
    assert lessor.lookup(1).keys == set() and lessor.lookup(2).keys == {b"k"}
    assert lessor.revoke(1) == set()


def test_leases_sorted_by_id_and_len() -> None:
    lessor = Lessor()
    for lease_id in (30, 10, 20):
        lessor.grant(lease_id, 10)
    assert [lease.id for lease in lessor.leases()] == [10, 20, 30]
    assert len(lessor) == 3


def test_checkpoint_of_unknown_lease_is_ignored() -> None:
    lessor = Lessor()
    lessor.checkpoint(5, 30)  # applied after the lease's revoke: etcd ignores it too
    assert lessor.lookup(5) is None and lessor.take_changes() == []


# --- primary: expiry ----------------------------------------------------------------------------------
def test_only_primary_expires_and_only_after_the_deadline() -> None:
    follower = Lessor()
    follower.grant(1, 10, now_s=0.0)
    assert follower.expired(1e9) == []  # a follower keeps no deadlines

    lessor = primary(now_s=0.0)
    lessor.grant(1, 10, now_s=0.0)
    assert lessor.expired(9.99) == []
    assert lessor.expired(10.0) == [1]


def test_expired_offers_once_then_retries() -> None:
    lessor = primary(now_s=0.0)
    lessor.grant(1, 5, now_s=0.0)
    assert lessor.expired(6.0) == [1]
    assert lessor.expired(6.5) == []  # its revoke is being proposed
    assert lessor.expired(6.0 + lessor.retry_s) == [1]  # the proposal was lost: offer again
    lessor.revoke(1)
    assert lessor.expired(100.0) == []


def test_expired_respects_limit_and_order() -> None:
    lessor = primary(now_s=0.0)
    for lease_id in range(1, 11):
        lessor.grant(lease_id, 100 - lease_id, now_s=0.0)  # lease 10 expires first
    assert lessor.expired(1000.0, limit=3) == [10, 9, 8]
    assert lessor.expired(1000.0, limit=100) == [7, 6, 5, 4, 3, 2, 1]


def test_grant_on_primary_without_now_starts_from_latest_time_seen() -> None:
    lessor = primary(now_s=50.0)
    lessor.grant(1, 10)  # the member renews right after; without it the lease still expires
    assert lessor.expired(59.9) == [] and lessor.expired(60.0) == [1]


def test_renew_resets_the_deadline() -> None:
    lessor = primary(now_s=0.0)
    lessor.grant(1, 10, now_s=0.0)
    assert lessor.renew(1, 8.0) == 10
    assert lessor.expired(17.9) == []
    assert lessor.remaining_s(1, 12.5) == 5
    assert lessor.expired(18.0) == [1]


def test_renew_errors() -> None:
    follower = Lessor()
    follower.grant(1, 10)
    with pytest.raises(NotPrimaryError):
        follower.renew(1, 0.0)
    lessor = primary(now_s=0.0)
    with pytest.raises(LeaseNotFoundError):
        lessor.renew(2, 0.0)
    lessor.grant(2, 5, now_s=0.0)
    with pytest.raises(LeaseNotFoundError):  # expired, revoke pending: etcd answers "lease not found"
        lessor.renew(2, 5.0)


def test_remaining_truncates_like_etcd_and_reports_expired_as_minus_one() -> None:
    lessor = primary(now_s=0.0)
    lessor.grant(1, 10, now_s=0.0)
    assert lessor.remaining_s(1, 0.01) == 9  # etcd: "granted with TTL(10s), remaining(9s)"
    assert lessor.remaining_s(1, 9.5) == 0
    assert lessor.remaining_s(1, 10.0) == -1
    with pytest.raises(LeaseNotFoundError):
        lessor.remaining_s(2, 0.0)


def test_remaining_on_a_follower_is_the_checkpoint_or_the_ttl() -> None:
    lessor = Lessor()
    lessor.grant(1, 60)
    assert lessor.remaining_s(1, 123.0) == 60
    lessor.checkpoint(1, 25)
    assert lessor.remaining_s(1, 123.0) == 25


# --- leader changes and checkpoints ---------------------------------------------------------------------
def test_remaining_ttl_survives_a_leader_change() -> None:
    # etcd resets a lease to its full TTL on a new leader (#9395, #13294); with checkpoints it does not:
    # granted 60 s, 30 s pass, the remaining TTL is checkpointed, the new primary expires it ~30 s later.
    old, new = primary(now_s=0.0), Lessor()
    for member in (old, new):
        member.grant(1, 60, now_s=0.0)
    due = old.due_checkpoints(30.0, interval_s=5.0)
    assert due == [(1, 30)]
    for member in (old, new):  # the LeaseCheckpoint entry applies everywhere
        member.checkpoint(*due[0])
    old.demote()
    new.promote(1000.0)
    assert not old.is_primary and old.expired(1e9) == []
    assert new.expired(1029.9) == [] and new.expired(1030.0) == [1]


def test_promote_without_checkpoint_uses_the_full_ttl() -> None:
    lessor = Lessor()
    lessor.grant(1, 60)
    lessor.promote(10.0)
    assert lessor.expired(69.9) == [] and lessor.expired(70.0) == [1]


def test_due_checkpoints_waits_an_interval_and_skips_short_leases() -> None:
    lessor = primary(now_s=0.0)
    lessor.grant(1, 60, now_s=0.0)
    lessor.grant(2, 4, now_s=0.0)  # shorter than the interval: never checkpointed
    assert lessor.due_checkpoints(4.0, interval_s=5.0) == []
    assert lessor.due_checkpoints(5.0, interval_s=5.0) == [(1, 55)]
    assert lessor.due_checkpoints(9.0, interval_s=5.0) == []  # checkpointed less than an interval ago
    assert lessor.due_checkpoints(10.5, interval_s=5.0) == [(1, 50)]  # rounded up, as etcd


def test_due_checkpoints_skips_an_unchanged_remaining_ttl() -> None:
    lessor = primary(now_s=0.0)
    lessor.grant(1, 60, now_s=0.0)
    lessor.renew(1, 5.0)  # remaining TTL is the full TTL again: nothing to replicate
    assert lessor.due_checkpoints(5.0, interval_s=5.0) == []


def test_due_checkpoints_is_bounded() -> None:
    lessor = primary(now_s=0.0)
    for lease_id in range(1, 51):
        lessor.grant(lease_id, 600, now_s=0.0)
    first = lessor.due_checkpoints(60.0, interval_s=5.0, limit=20)
    second = lessor.due_checkpoints(60.0, interval_s=5.0, limit=100)
    assert len(first) == 20 and len(second) == 30
    assert {i for i, _ in first} | {i for i, _ in second} == set(range(1, 51))


def test_renew_after_a_checkpoint_clears_it_at_once() -> None:
    # Otherwise a new primary would start the renewed lease from the stale, shorter remaining TTL.
    lessor = primary(now_s=0.0)
    lessor.grant(1, 60, now_s=0.0)
    assert lessor.due_checkpoints(30.0, interval_s=5.0) == [(1, 30)]
    lessor.checkpoint(1, 30)
    lessor.renew(1, 31.0)
    assert lessor.due_checkpoints(31.0, interval_s=5.0) == [(1, 0)]
    lessor.checkpoint(1, 0)
    lessor.demote()
    lessor.promote(100.0)
    assert lessor.expired(159.9) == [] and lessor.expired(160.0) == [1]


def test_renew_while_a_checkpoint_is_in_flight_also_clears_it() -> None:
    lessor = primary(now_s=0.0)
    lessor.grant(1, 60, now_s=0.0)
    assert lessor.due_checkpoints(30.0, interval_s=5.0) == [(1, 30)]  # proposed, not applied yet
    lessor.renew(1, 31.0)
    assert lessor.due_checkpoints(31.0, interval_s=5.0) == [(1, 0)]


def test_primary_calls_are_empty_on_a_follower() -> None:
    lessor = Lessor()
    lessor.grant(1, 60)
    assert lessor.due_checkpoints(1e6, interval_s=5.0) == []
    assert lessor.expired(1e6) == []


def test_many_renewals_keep_the_queues_small() -> None:
    lessor = primary(now_s=0.0)
    lessor.grant(1, 60, now_s=0.0)
    for step in range(10_000):
        lessor.renew(1, step * 0.01)
    assert len(lessor._expiry_heap) < 200
    assert lessor.expired(99.99 + 59.9) == [] and lessor.expired(99.99 + 60.0) == [1]


# --- backend ------------------------------------------------------------------------------------------
def test_take_changes_records_grant_checkpoint_revoke_not_renew() -> None:
    lessor = primary(now_s=0.0)
    a = lessor.grant(1, 60, now_s=0.0)
    lessor.attach(1, b"k")
    lessor.renew(1, 1.0)
    lessor.checkpoint(1, 42)
    assert lessor.take_changes() == [(1, a), (1, a)]
    assert lessor.take_changes() == []
    lessor.revoke(1)
    assert lessor.take_changes() == [(1, None)]


def test_encode_is_etcd_leasepb() -> None:
    # leasepb.Lease{ID: 1, TTL: 10}: field 1 varint 1, field 2 varint 10; zero fields omitted.
    assert encode_lease(Lease(1, 10)) == b"\x08\x01\x10\x0a"
    assert lease_key(0x694DA201E861800A) == bytes.fromhex("694da201e861800a")
    for lease in (Lease(0x694DA201E861800A, 60, 30), Lease(-5, 2), Lease(1, MAX_LEASE_TTL_S)):
        back = decode_lease(encode_lease(lease))
        assert (back.id, back.ttl_s, back.remaining_ttl_s) == (lease.id, lease.ttl_s, lease.remaining_ttl_s)
    # Unknown fields (here a length-delimited field 9) are skipped.
    assert decode_lease(b"\x08\x03\x4a\x02hi\x10\x05").ttl_s == 5
    with pytest.raises(ValueError):
        decode_lease(b"\x08")


def test_restore_round_trip() -> None:
    lessor = primary(now_s=0.0)
    bucket: dict[bytes, bytes] = {}
    lessor.grant(3, 60, now_s=0.0)
    lessor.grant(1, 10, now_s=0.0)
    lessor.grant(2, 10, now_s=0.0)
    lessor.checkpoint(3, 25)
    lessor.revoke(2)
    for lease_id, lease in lessor.take_changes():
        if lease is None:
            bucket.pop(lease_key(lease_id))
        else:
            bucket[lease_key(lease_id)] = encode_lease(lease)
    restored = Lessor.restore(sorted(bucket.items()), min_ttl_s=2)
    assert [(x.id, x.ttl_s, x.remaining_ttl_s, x.keys) for x in restored.leases()] == [
        (1, 10, 0, set()),
        (3, 60, 25, set()),
    ]
    assert not restored.is_primary and restored.take_changes() == []
    restored.attach(3, b"k")  # the member re-attaches keys while restoring the keyspace
    restored.promote(0.0)
    assert restored.expired(24.9) == [1] and restored.expired(25.0) == [3]


def test_restore_accepts_leases_and_raises_small_ttls_to_the_minimum() -> None:
    restored = Lessor.restore([Lease(1, 1), encode_lease(Lease(2, 30))], min_ttl_s=3)
    assert [(x.id, x.ttl_s) for x in restored.leases()] == [(1, 3), (2, 30)]

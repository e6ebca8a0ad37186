"""Cluster membership: the members a member knows, how a change to them travels through raft, and the
checks etcd makes before it proposes one.

A change is a raft CONF_CHANGE entry. Its context carries the proposer's request ID (so the proposer can
answer its client once the change is applied) and, for an added or updated member, the member itself,
so every member records the same names and URLs at the same log position. The members and the IDs of
removed members live in the backend (buckets ``members`` and ``members_removed``, as etcd's): a removed
ID is refused forever, and a member that learns it was removed stops.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from flotilla.backend import WriteBatch
from flotilla.etcd import errors
from flotilla.etcd.config import validate_url
from flotilla.etcd.ids import member_id as compute_member_id
from flotilla.raft import ConfChange, ConfChangeType

__all__ = [
    "HEALTH_INTERVAL_S",
    "Member",
    "check_add",
    "check_promote",
    "check_remove",
    "check_update",
    "decode_change",
    "encode_change",
    "load_members",
    "member_record",
    "new_member",
    "parse_peer_urls",
    "removed_record",
]

_U64 = struct.Struct(">Q")
HEALTH_INTERVAL_S = 5.0  # etcd: a peer counts as connected if it has been since this long ago
MAX_LEARNERS = 1  # etcd 3.4's limit


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...] = ()
    is_learner: bool = False

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "peer_urls": list(self.peer_urls),
            "client_urls": list(self.client_urls),
            "is_learner": self.is_learner,
        }

    @classmethod
    def from_json(cls, d: dict) -> Member:
        return cls(
            d["id"], d["name"], tuple(d["peer_urls"]), tuple(d["client_urls"]), d.get("is_learner", False)
        )

    @property
    def started(self) -> bool:
        """etcd's IsStarted: the member has published its name (it ran and joined)."""
        return bool(self.name)


# --- persistence ------------------------------------------------------------------------------------
def load_members(backend) -> tuple[dict[int, Member], set[int]]:
    members = {}
    for _, value in backend.scan("members"):
        member = Member.from_json(json.loads(value))
        members[member.id] = member
    removed = {_U64.unpack(key)[0] for key, _ in backend.scan("members_removed")}
    return members, removed


def member_record(batch: WriteBatch, member: Member) -> None:
    batch.put("members", _U64.pack(member.id), json.dumps(member.to_json()).encode())


def removed_record(batch: WriteBatch, member_id: int) -> None:
    batch.delete("members", _U64.pack(member_id))
    batch.put("members_removed", _U64.pack(member_id), b"removed")


# --- the raft entry ---------------------------------------------------------------------------------
def encode_change(kind: ConfChangeType, member_id: int, request_id: int, member: Member | None) -> ConfChange:
    context = {"request_id": request_id}
    if member is not None:
        context["member"] = member.to_json()
    return ConfChange(kind, member_id, json.dumps(context).encode())


def decode_change(change: ConfChange) -> tuple[int, Member | None]:
    """The proposer's request ID and the member the change carries (None for a removal)."""
    if not change.context:
        return 0, None
    context = json.loads(change.context)
    member = context.get("member")
    return context.get("request_id", 0), Member.from_json(member) if member else None


# --- etcd's checks before proposing (--strict-reconfig-check) ----------------------------------------
def parse_peer_urls(urls: Iterable[str]) -> tuple[str, ...]:
    parsed = []
    for url in urls:
        try:
            parsed.append(validate_url(url))
        except ValueError:
            raise errors.member_bad_urls() from None
    if not parsed:
        raise errors.member_bad_urls()
    return tuple(parsed)


def new_member(peer_urls: tuple[str, ...], is_learner: bool) -> Member:
    """A member to add: etcd hashes its peer URLs with the time, so re-adding the same URLs gives a new
    ID. The name stays empty until the member starts and publishes it."""
    return Member(compute_member_id(peer_urls, "", time.time()), "", peer_urls, (), is_learner)


def _check_urls_free(members: dict[int, Member], urls: tuple[str, ...], except_id: int = 0) -> None:
    for other in members.values():
        if other.id != except_id and set(other.peer_urls) & set(urls):
            raise errors.peer_url_exists()


def check_add(members: dict[int, Member], removed: set[int], member: Member, *, strict: bool = True) -> None:
    if member.id in members or member.id in removed:
        raise errors.member_exists()
    _check_urls_free(members, member.peer_urls)
    if not strict:
        return
    if member.is_learner:
        if sum(m.is_learner for m in members.values()) >= MAX_LEARNERS:
            raise errors.too_many_learners()
        return
    # etcd's IsReadyToAddVotingMember: the started voters must still be a quorum once the new, not
    # yet started, member counts (a one-member cluster may always grow to two, to restore from it).
    voters = [m for m in members.values() if not m.is_learner]
    started = sum(m.started for m in voters)
    size = len(voters) + 1
    if started == 1 and size == 2:
        return
    if started < size // 2 + 1:
        raise errors.not_enough_started()


def check_remove(
    members: dict[int, Member], target: int, self_id: int, active_since: dict[int, float | None], now: float
) -> None:
    """etcd's mayRemoveMember: a learner or a member that is down may go; removing a connected voter must
    leave a quorum of connected voters."""
    member = members.get(target)
    if member is None:
        raise errors.member_not_found()
    if member.is_learner:
        return
    voters = [m for m in members.values() if not m.is_learner]
    started = sum(m.started for m in voters if m.id != target)
    if started < (len(voters) - 1) // 2 + 1:
        raise errors.not_enough_started()
    if target != self_id and active_since.get(target) is None:
        return  # a downed member is not part of the active quorum
    healthy_since = now - HEALTH_INTERVAL_S
    connected = sum(
        1
        for m in voters
        if m.id == self_id or ((since := active_since.get(m.id)) is not None and since <= healthy_since)
    )
    if connected - 1 < 1 + (len(voters) - 1) // 2:
        raise errors.not_enough_started()


def check_update(members: dict[int, Member], target: int, peer_urls: tuple[str, ...]) -> Member:
    member = members.get(target)
    if member is None:
        raise errors.member_not_found()
    _check_urls_free(members, peer_urls, except_id=target)
    return replace(member, peer_urls=peer_urls)


def check_promote(members: dict[int, Member], target: int, match: int | None, leader_match: int) -> Member:
    """etcd promotes a learner only when its log is within 90% of the leader's."""
    member = members.get(target)
    if member is None:
        raise errors.member_not_found()
    if not member.is_learner:
        raise errors.member_not_learner()
    if match is None or match < leader_match * 0.9:
        raise errors.learner_not_ready()
    return replace(member, is_learner=False)

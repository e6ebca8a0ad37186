"""Member and cluster IDs computed exactly as etcd 3.4 does, and etcd's text form of an ID (``types.ID``).

Every member of a new cluster derives every founding member's ID, and the cluster ID, from the same
flags (``--initial-cluster`` and ``--initial-cluster-token``), so they agree without talking. Members
added later (``member add``) get an ID that also hashes the time of the request, so re-adding the same
peer URLs gives a new ID.
"""

from __future__ import annotations

import hashlib
import math
import string
from collections.abc import Iterable

__all__ = ["cluster_id", "format_id", "member_id", "parse_id"]

_MAX_ID = (1 << 64) - 1
_HEX_DIGITS = frozenset(string.hexdigits)


def _first_8_bytes_as_uint64(data: bytes) -> int:
    return int.from_bytes(hashlib.sha1(data).digest()[:8], "big")


def member_id(peer_urls: Iterable[str], cluster_token: str, now: float | None = None) -> int:
    """The ID etcd gives a member: the first 8 bytes (big-endian) of the SHA-1 of its peer URLs sorted and
    concatenated, then ``cluster_token``, then, when ``now`` is given, the decimal Unix time in whole
    seconds.

    Founding members (bootstrap from ``--initial-cluster``): ``member_id(urls, initial_cluster_token)``
    (with discovery, the token is the discovery URL). Members added at runtime (v3 MemberAdd, v2 POST
    /v2/members): etcd passes an empty token and the request time, ``member_id(urls, "", time.time())``.
    The URLs must be in the form etcd prints them (as ``--initial-cluster`` normalises them).
    """
    data = "".join(sorted(peer_urls)) + cluster_token
    if now is not None:
        # Go's Time.Unix() rounds towards minus infinity.
        data += str(math.floor(now))
    return _first_8_bytes_as_uint64(data.encode())


def cluster_id(member_ids: Iterable[int]) -> int:
    """The cluster ID etcd derives at bootstrap: the first 8 bytes of the SHA-1 over the founding members'
    IDs, sorted ascending, each as 8 bytes big-endian. It never changes as members come and go."""
    data = b"".join(i.to_bytes(8, "big") for i in sorted(member_ids))
    return _first_8_bytes_as_uint64(data)


def format_id(i: int) -> str:
    """An ID as etcd prints it: lower-case hex without padding (``8e9e05c52164694d``, ``9288f5874df0e01``)."""
    if not 0 <= i <= _MAX_ID:
        raise ValueError(f"{i} is not an etcd ID (an unsigned 64-bit integer)")
    return format(i, "x")


def parse_id(s: str) -> int:
    """An ID from its hex form, as etcd's ``types.IDFromString`` reads it: hex digits of either case, no
    ``0x`` prefix, sign, spaces or underscores, at most 64 bits. Raises ValueError otherwise."""
    if not s or not all(c in _HEX_DIGITS for c in s):
        raise ValueError(f"{s!r} is not a member ID: expected hex digits such as 8e9e05c52164694d")
    value = int(s, 16)
    if value > _MAX_ID:
        raise ValueError(f"{s!r} is not a member ID: more than 64 bits")
    return value

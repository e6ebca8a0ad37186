"""The values the v3 keyspace is made of: key-values, events, revisions.

These mirror etcd's ``mvccpb.KeyValue`` and ``mvccpb.Event`` as plain tuples, so the core stays free of
protobuf; the member converts at its API boundary.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class KeyValue(NamedTuple):
    """One version of a key. ``version`` is 1 on creation and counts modifications since; a deleted key
    has version 0. ``lease`` is 0 when the key has no lease."""

    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes = b""
    lease: int = 0


class EventType(IntEnum):
    PUT = 0
    DELETE = 1


class Event(NamedTuple):
    """A change at ``kv.mod_revision``. A DELETE's ``kv`` is a tombstone: the key and the deleting
    revision, every other field zero, as etcd reports it. ``prev_kv`` is the key's previous live
    version (None when a PUT created the key); watchers that did not ask for it get it stripped."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


class Revision(NamedTuple):
    """A position in the keyspace's history: ``main`` is the store revision of a write request or
    transaction, ``sub`` orders the changes inside it (0, 1, ...)."""

    main: int
    sub: int = 0

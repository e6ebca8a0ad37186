"""Raft messages as bytes, for the peer transport: a fixed header, the context, the entries, the snapshot.

Layout (big-endian)::

    header   type u8, to u64, sender u64, term u64, log_term u64, index u64, commit u64, reject u8,
             reject_hint u64, context length u32, entry count u32, snapshot flag u8
    context  bytes
    entries  each: term u64, index u64, type u8, data length u32, data
    snapshot index u64, term u64, voter count u32, learner count u32, data length u32, ids (u64 each), data

Decoding checks every length against what is there: truncated or trailing bytes raise ``CodecError``.
"""

from __future__ import annotations

import struct

from .types import ConfState, Entry, EntryType, Message, MessageType, Snapshot

__all__ = ["CodecError", "decode_message", "encode_message"]

_HEADER = struct.Struct(">BQQQQQQBQIIB")
_ENTRY = struct.Struct(">QQBI")
_SNAPSHOT = struct.Struct(">QQIII")
_ID = struct.Struct(">Q")
_MESSAGE_TYPES = {t.value: t for t in MessageType}
_ENTRY_TYPES = {t.value: t for t in EntryType}


class CodecError(ValueError):
    """The bytes are not an encoded raft message (truncated, trailing garbage, unknown type)."""


def encode_message(m: Message) -> bytes:
    snapshot = m.snapshot
    header = _HEADER.pack(
        m.type, m.to, m.sender, m.term, m.log_term, m.index, m.commit, m.reject, m.reject_hint,
        len(m.context), len(m.entries), snapshot is not None,
    )  # fmt: skip
    parts = [header, m.context]
    pack_entry = _ENTRY.pack
    for e in m.entries:
        parts.append(pack_entry(e.term, e.index, e.type, len(e.data)))
        parts.append(e.data)
    if snapshot is not None:
        voters, learners = sorted(snapshot.conf_state.voters), sorted(snapshot.conf_state.learners)
        counts = (len(voters), len(learners), len(snapshot.data))
        parts.append(_SNAPSHOT.pack(snapshot.index, snapshot.term, *counts))
        parts.extend(_ID.pack(i) for i in (*voters, *learners))
        parts.append(snapshot.data)
    return b"".join(parts)


def decode_message(data: bytes | memoryview) -> Message:
    view = memoryview(data)
    size = len(view)
    if size < _HEADER.size:
        raise CodecError(f"a raft message needs at least {_HEADER.size} bytes, got {size}")
    (kind, to, sender, term, log_term, index, commit, reject, reject_hint, context_len, entry_count,
     has_snapshot) = _HEADER.unpack_from(view)  # fmt: skip
    message_type = _MESSAGE_TYPES.get(kind)
    if message_type is None:
        raise CodecError(f"unknown raft message type {kind}")
    pos = _HEADER.size
    end = pos + context_len
    if end > size:
        raise CodecError("truncated raft message: the context runs past the end")
    context = bytes(view[pos:end])
    pos = end
    entries = []
    unpack_entry = _ENTRY.unpack_from
    entry_size = _ENTRY.size
    entry_types = _ENTRY_TYPES
    for _ in range(entry_count):
        if pos + entry_size > size:
            raise CodecError("truncated raft message: an entry header runs past the end")
        e_term, e_index, e_type, data_len = unpack_entry(view, pos)
        pos += entry_size
        end = pos + data_len
        if end > size:
            raise CodecError("truncated raft message: an entry's data runs past the end")
        entry_type = entry_types.get(e_type)
        if entry_type is None:
            raise CodecError(f"unknown raft entry type {e_type}")
        entries.append(Entry(e_term, e_index, entry_type, bytes(view[pos:end])))
        pos = end
    snapshot = None
    if has_snapshot > 1:
        raise CodecError(f"bad snapshot flag {has_snapshot}")
    if has_snapshot:
        if pos + _SNAPSHOT.size > size:
            raise CodecError("truncated raft message: the snapshot header runs past the end")
        s_index, s_term, n_voters, n_learners, data_len = _SNAPSHOT.unpack_from(view, pos)
        pos += _SNAPSHOT.size
        ids_end = pos + _ID.size * (n_voters + n_learners)
        if ids_end + data_len > size:
            raise CodecError("truncated raft message: the snapshot runs past the end")
        ids = [_ID.unpack_from(view, p)[0] for p in range(pos, ids_end, _ID.size)]
        conf_state = ConfState(frozenset(ids[:n_voters]), frozenset(ids[n_voters:]))
        snapshot = Snapshot(s_index, s_term, conf_state, bytes(view[ids_end : ids_end + data_len]))
        pos = ids_end + data_len
    if pos != size:
        raise CodecError(f"{size - pos} unexpected bytes after a raft message")
    return Message(
        message_type, to, sender, term, log_term, index, entries, commit, snapshot, bool(reject), reject_hint,
        context,
    )  # fmt: skip

"""The raft message codec: every field survives a round trip; bad bytes raise CodecError, never worse."""

from __future__ import annotations

import random

import pytest

from flotilla.raft import (
    CodecError,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    decode_message,
    encode_message,
)

U64 = (1 << 64) - 1


def _random_message(rng: random.Random) -> Message:
    def number() -> int:
        return rng.choice((0, 1, rng.randrange(1 << 16), rng.randrange(1 << 64), U64))

    def blob() -> bytes:
        return rng.randbytes(rng.choice((0, 1, rng.randrange(300))))

    entries = [
        Entry(number(), number(), rng.choice(list(EntryType)), blob()) for _ in range(rng.choice((0, 1, 5)))
    ]
    snapshot = None
    if rng.random() < 0.3:
        ids = rng.sample(range(1, 1000), 6)
        conf_state = ConfState(frozenset(ids[: rng.randrange(4)]), frozenset(ids[4 : 4 + rng.randrange(3)]))
        snapshot = Snapshot(number(), number(), conf_state, blob())
    return Message(
        type=rng.choice(list(MessageType)),
        to=number(),
        sender=number(),
        term=number(),
        log_term=number(),
        index=number(),
        entries=entries,
        commit=number(),
        snapshot=snapshot,
        reject=rng.random() < 0.5,
        reject_hint=number(),
        context=blob(),
    )


@pytest.mark.parametrize("seed", range(5))
def test_every_field_round_trips(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(300):
        message = _random_message(rng)
        decoded = decode_message(encode_message(message))
        assert decoded == message, f"seed {seed}"
        assert type(decoded.type) is MessageType
        assert all(type(e.type) is EntryType for e in decoded.entries)


def test_an_empty_snapshot_is_not_no_snapshot() -> None:
    with_empty = Message(MessageType.SNAP, to=2, sender=1, snapshot=Snapshot())
    assert decode_message(encode_message(with_empty)).snapshot == Snapshot()
    assert decode_message(encode_message(Message(MessageType.HEARTBEAT))).snapshot is None


def test_decodes_from_a_memoryview() -> None:
    message = Message(MessageType.APP, 2, 1, 3, 3, 7, [Entry(3, 8, EntryType.NORMAL, b"x")], commit=7)
    assert decode_message(memoryview(encode_message(message))) == message


def test_every_truncation_is_an_error() -> None:
    rng = random.Random(7)
    for _ in range(30):
        data = encode_message(_random_message(rng))
        for cut in range(len(data)):
            with pytest.raises(CodecError):
                decode_message(data[:cut])


def test_trailing_bytes_and_unknown_types_are_errors() -> None:
    data = encode_message(Message(MessageType.APP, to=2, sender=1))
    with pytest.raises(CodecError, match="unexpected bytes"):
        decode_message(data + b"\0")
    with pytest.raises(CodecError, match="message type"):
        decode_message(bytes([99]) + data[1:])
    entry = encode_message(Message(MessageType.APP, entries=[Entry(1, 1)]))
    position = len(entry) - 5  # the entry's type byte sits before its u32 data length
    with pytest.raises(CodecError, match="entry type"):
        decode_message(entry[:position] + bytes([9]) + entry[position + 1 :])
    assert issubclass(CodecError, ValueError)


def test_garbage_raises_codec_error_quickly() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        garbage = rng.randbytes(rng.randrange(200))
        try:
            decode_message(garbage)
        except CodecError:
            pass
    # Huge counts in a short buffer fail on the first bounds check instead of allocating or looping.
    header = bytearray(encode_message(Message(MessageType.APP)))
    header[-9:-1] = b"\xff" * 8  # entry count and context length fields
    with pytest.raises(CodecError):
        decode_message(bytes(header))

"""The sequential specification of one key: a register that holds a value or nothing (None)."""

from __future__ import annotations

from .history import Operation

__all__ = ["MISSING", "step"]

MISSING = None


def step(state: str | None, op: Operation) -> tuple[bool, str | None]:
    """Whether ``op`` may take effect on a key holding ``state``, and what the key holds after.

    An operation of unknown outcome is always allowed: it took effect here (a put, delete or cas that
    applies) or, equally, never did — the checker may place it after every known operation, where it
    changes nothing anyone saw."""
    kind = op.kind
    if kind == "put":
        return True, op.value
    if kind == "get":
        return (not op.known or op.value == state), state
    if kind == "delete":
        return True, MISSING
    # cas
    matches = state == op.expected
    if not op.known:
        return True, op.value if matches else state
    if op.ok:
        return matches, op.value
    return not matches, state

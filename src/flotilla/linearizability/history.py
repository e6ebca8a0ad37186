"""A client's view of one operation on a key-value store: what it asked, what it saw, and when.

Times are the client's monotonic clock in nanoseconds: ``start_ns`` before the request left, ``end_ns`` after
the answer arrived. An operation whose outcome the client does not know (a timeout, a lost connection: it
may or may not have taken effect) has ``end_ns=None``; ``ok`` and a get's ``value`` then mean nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

__all__ = ["KINDS", "Operation", "dump_history", "load_history"]

KINDS = ("put", "get", "delete", "cas")


@dataclass(frozen=True)
class Operation:
    """``kind``: "put" (``value`` written), "get" (``value`` observed, None: the key was missing), "delete",
    "cas" (if the key holds ``expected`` — None: missing — write ``value``; ``ok``: whether it swapped)."""

    client_id: int
    kind: str
    key: str
    value: str | None
    expected: str | None
    start_ns: int
    end_ns: int | None
    ok: bool | None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown operation kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.end_ns is not None and self.end_ns < self.start_ns:
            raise ValueError(f"operation ends ({self.end_ns}) before it starts ({self.start_ns})")

    @property
    def known(self) -> bool:
        return self.end_ns is not None

    def describe(self) -> str:
        """One line a person can read: ``client 3: get k -> 'v1' [12.001 ms, 12.500 ms]``."""
        if self.kind == "put":
            what = f"put {self.key}={self.value!r}"
        elif self.kind == "get":
            what = f"get {self.key} -> {'missing' if self.value is None else repr(self.value)}"
        elif self.kind == "delete":
            what = f"delete {self.key}"
        else:
            outcome = {True: "swapped", False: "did not swap", None: "?"}[self.ok if self.known else None]
            expected = "missing" if self.expected is None else repr(self.expected)
            what = f"cas {self.key} {expected}->{self.value!r} {outcome}"
        end = "unknown (timed out)" if self.end_ns is None else f"{self.end_ns / 1e6:.3f} ms"
        return f"client {self.client_id}: {what} [{self.start_ns / 1e6:.3f} ms, {end}]"


def dump_history(history: Iterable[Operation]) -> str:
    """JSON lines, one operation each (for a failing run's record)."""
    return "".join(json.dumps(asdict(op), sort_keys=True) + "\n" for op in history)


def load_history(text: str) -> list[Operation]:
    return [Operation(**json.loads(line)) for line in text.splitlines() if line.strip()]

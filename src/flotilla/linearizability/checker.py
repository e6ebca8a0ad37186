"""Is a history of key-value operations linearizable? Wing & Gong's search with Lowe's memoization, as in
porcupine and knossos, one key at a time (linearizability is compositional: a history is linearizable iff
each key's sub-history is).

For one key the operations become call and return events in time order, kept in a linked list. The search
walks it: at a call it tries to linearize that operation now (the register model must allow it), lifting the
call and its return out of the list; at a return whose call is still in the list, the operation cannot have
happened before it ended, so the search backtracks. A state already seen — the same set of linearized
operations and the same register value — is not explored twice. An operation of unknown outcome has no
return event: it may be linearized anywhere after its call, or at the very end, which is the same as never.

Calls sort before returns at equal times (such operations count as concurrent: the permissive reading).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .history import Operation
from .kv_model import MISSING, step

__all__ = ["CheckResult", "KeyFailure", "check", "check_key"]

DEFAULT_MAX_STEPS = 5_000_000


@dataclass(frozen=True)
class KeyFailure:
    """Why one key's history is not linearizable: the longest linearizable prefix the search found and
    the operation that could not be placed after it."""

    key: str
    linearized: tuple[Operation, ...]
    stuck: Operation
    value_then: str | None
    pending: tuple[Operation, ...]

    def explain(self) -> str:
        held = "nothing" if self.value_then is None else repr(self.value_then)
        lines = [
            f"key {self.key!r} is not linearizable: at most {len(self.linearized)} operations line up, then",
            f"  {self.stuck.describe()}",
            f"  cannot take effect before it ended: in the longest ordering found, the key held {held} then",
        ]
        writer = next((op for op in reversed(self.linearized) if op.kind != "get"), None)
        if writer is not None:
            lines.append(f"  (last write linearized: {writer.describe()})")
        if self.pending:
            lines.append("  operations still open then:")
            lines.extend(f"    {op.describe()}" for op in self.pending[:8])
        return "\n".join(lines)


@dataclass(frozen=True)
class CheckResult:
    """``ok``: True (linearizable), False (not: ``failures`` says where) or None (the step budget ran out
    before an answer: ``undecided`` names the keys)."""

    ok: bool | None
    keys: int
    operations: int
    failures: tuple[KeyFailure, ...] = ()
    undecided: tuple[str, ...] = ()
    steps: int = 0
    notes: list[str] = field(default_factory=list)

    def explain(self) -> str:
        if self.ok:
            return (
                f"linearizable: {self.operations} operations on {self.keys} keys ({self.steps} search steps)"
            )
        parts = [failure.explain() for failure in self.failures]
        if self.undecided:
            parts.append(f"undecided (step budget exhausted) for keys: {', '.join(self.undecided)}")
        return "\n".join(parts)


class _Entry:
    __slots__ = ("is_call", "op_index", "match", "prev", "next")

    def __init__(self, is_call: bool, op_index: int) -> None:
        self.is_call = is_call
        self.op_index = op_index
        self.match: _Entry | None = None  # a call's return entry (None: unknown outcome)
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _build_list(ops: list[Operation]) -> _Entry:
    events = []
    for i, op in enumerate(ops):
        events.append((op.start_ns, 0, i))
        if op.known:
            events.append((op.end_ns, 1, i))
    events.sort()
    head = _Entry(False, -1)  # sentinel
    calls: dict[int, _Entry] = {}
    tail = head
    for _, kind, i in events:
        entry = _Entry(kind == 0, i)
        if kind == 0:
            calls[i] = entry
        else:
            calls[i].match = entry
        tail.next, entry.prev = entry, tail
        tail = entry
    return head


def _lift(call: _Entry) -> None:
    call.prev.next = call.next
    if call.next is not None:
        call.next.prev = call.prev
    ret = call.match
    if ret is not None:
        ret.prev.next = ret.next
        if ret.next is not None:
            ret.next.prev = ret.prev


def _unlift(call: _Entry) -> None:
    ret = call.match
    if ret is not None:
        ret.prev.next = ret
        if ret.next is not None:
            ret.next.prev = ret
    call.prev.next = call
    if call.next is not None:
        call.next.prev = call


def check_key(
    key: str, ops: list[Operation], max_steps: int = DEFAULT_MAX_STEPS
) -> tuple[bool | None, KeyFailure | None, int]:
    """Check one key's operations: (verdict, failure or None, steps used)."""
    ops = sorted(ops, key=lambda op: op.start_ns)
    head = _build_list(ops)
    state: str | None = MISSING
    linearized = 0
    seen: set[tuple[int, str | None]] = set()
    stack: list[tuple[_Entry, str | None]] = []
    order: list[int] = []
    best: tuple[int, list[int], int, str | None] = (-1, [], -1, MISSING)
    entry = head.next
    steps = 0
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return None, None, steps
        if entry is None:
            break  # only unknown-outcome calls remain unlinearized: they took effect never (at the end)
        if entry.is_call:
            op = ops[entry.op_index]
            allowed, new_state = step(state, op)
            if allowed:
                bits = linearized | (1 << entry.op_index)
                if (bits, new_state) not in seen:
                    seen.add((bits, new_state))
                    stack.append((entry, state))
                    order.append(entry.op_index)
                    state, linearized = new_state, bits
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # This operation ended before it could be linearized: undo the last choice.
            if len(order) > best[0]:
                best = (len(order), list(order), entry.op_index, state)
            if not stack:
                return False, _failure(key, ops, best, head), steps
            call, state = stack.pop()
            order.pop()
            linearized &= ~(1 << call.op_index)
            _unlift(call)
            entry = call.next
    return True, None, steps


def _failure(key: str, ops: list[Operation], best, head: _Entry) -> KeyFailure:
    count, order, stuck_index, value_then = best
    linearized = tuple(ops[i] for i in order)
    done = set(order)
    stuck = ops[stuck_index]
    pending = tuple(
        op
        for i, op in enumerate(ops)
        if i not in done and i != stuck_index and op.start_ns <= (stuck.end_ns or op.start_ns)
    )
    return KeyFailure(key, linearized, stuck, value_then, pending)


def check(history: Iterable[Operation], max_steps: int = DEFAULT_MAX_STEPS) -> CheckResult:
    """Check a whole history, key by key. ``max_steps`` bounds the search per key."""
    by_key: dict[str, list[Operation]] = defaultdict(list)
    total = 0
    for op in history:
        by_key[op.key].append(op)
        total += 1
    failures, undecided = [], []
    steps = 0
    for key in sorted(by_key):
        verdict, failure, used = check_key(key, by_key[key], max_steps)
        steps += used
        if verdict is None:
            undecided.append(key)
        elif not verdict:
            failures.append(failure)
    ok: bool | None = False if failures else (None if undecided else True)
    return CheckResult(ok, len(by_key), total, tuple(failures), tuple(undecided), steps)

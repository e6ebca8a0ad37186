"""The linearizability checker: hand-written histories with known verdicts, randomized histories from a
simulated linearizable register (must pass) and the same with one stale read injected (must fail)."""

from __future__ import annotations

import random

import pytest

from flotilla.linearizability import Operation, check, dump_history, load_history


def op(kind, key="k", value=None, start=0, end=0, *, expected=None, ok=True, client=1):
    return Operation(client, kind, key, value, expected, start, end, ok)


def test_a_sequential_history_is_linearizable():
    history = [op("put", value="a", start=0, end=1), op("get", value="a", start=2, end=3),
               op("delete", start=4, end=5), op("get", value=None, start=6, end=7)]  # fmt: skip
    assert check(history).ok is True


def test_concurrent_operations_may_order_either_way():
    for seen in ("a", "b"):
        history = [
            op("put", value="a", start=0, end=10, client=1),
            op("put", value="b", start=1, end=9, client=2),
            op("get", value=seen, start=11, end=12, client=3),
        ]
        assert check(history).ok is True
    # A read overlapping a write may see the old or the new value.
    for seen in (None, "a"):
        history = [op("put", value="a", start=0, end=10), op("get", value=seen, start=5, end=6, client=2)]
        assert check(history).ok is True


def test_a_stale_read_after_a_completed_write_fails_and_says_why():
    history = [op("put", value="v1", start=0, end=1), op("put", value="v2", start=2, end=3),
               op("get", value="v1", start=4, end=5, client=2)]  # fmt: skip
    result = check(history)
    assert result.ok is False
    text = result.explain()
    assert "key 'k' is not linearizable" in text and "get k -> 'v1'" in text and "'v2'" in text


def test_a_value_never_written_fails():
    assert check([op("put", value="a", start=0, end=1), op("get", value="zz", start=2, end=3)]).ok is False


def test_a_lost_acknowledged_write_fails():
    history = [op("put", value="a", start=0, end=1), op("get", value=None, start=2, end=3)]
    assert check(history).ok is False


def test_a_timed_out_write_may_or_may_not_have_happened():
    unknown = op("put", value="maybe", start=0, end=None, ok=None)
    appears = [unknown, op("get", value="maybe", start=5, end=6, client=2)]
    never = [unknown, op("get", value=None, start=5, end=6, client=2)]
    assert check(appears).ok is True
    assert check(never).ok is True
    # ... but it cannot appear, vanish and appear again with nothing else written.
    flicker = [unknown, op("get", value="maybe", start=5, end=6, client=2),
               op("get", value=None, start=7, end=8, client=2)]  # fmt: skip
    assert check(flicker).ok is False


def test_cas_semantics():
    history = [
        op("put", value="a", start=0, end=1),
        op("cas", value="b", expected="a", start=2, end=3, ok=True),
        op("cas", value="c", expected="a", start=4, end=5, ok=False),
        op("get", value="b", start=6, end=7),
    ]
    assert check(history).ok is True
    wrong = [
        op("put", value="a", start=0, end=1),
        op("cas", value="b", expected="a", start=2, end=3, ok=False),
    ]
    assert check(wrong).ok is False
    on_missing = [
        op("cas", value="x", expected=None, start=0, end=1, ok=True),
        op("get", value="x", start=2, end=3),
    ]
    assert check(on_missing).ok is True


def test_keys_are_checked_separately_and_a_bad_key_is_named():
    history = [op("put", "a", "1", 0, 1), op("put", "b", "1", 0, 1), op("get", "b", "2", 2, 3)]
    result = check(history)
    assert result.ok is False and [f.key for f in result.failures] == ["b"]


def test_a_step_budget_gives_unknown_not_a_hang():
    rng = random.Random(3)
    history = [op("put", value=str(i), start=0, end=10_000, client=i) for i in range(40)]
    history += [op("get", value=str(rng.randrange(40)), start=10_001 + i, end=10_002 + i) for i in range(3)]
    assert check(history, max_steps=50).ok is None


def test_histories_round_trip_through_json():
    history = [
        op("put", value="a", start=0, end=1),
        op("cas", value="b", expected=None, start=2, end=None, ok=None),
    ]
    assert load_history(dump_history(history)) == history


def _simulate(
    seed: int, clients: int = 5, ops_per_client: int = 200, keys: int = 4, unknown_rate: float = 0.02
):
    """A linearizable store: each operation takes effect at one random instant inside its interval."""
    rng = random.Random(seed)
    store: dict[str, str | None] = {}
    pending = []  # (effect_time, start, end, client, kind, key, value, expected, unknown)
    counter = 0
    for client in range(clients):
        t = rng.randrange(5)
        for _ in range(ops_per_client):
            start = t
            end = start + rng.randrange(1, 40)
            effect = rng.randrange(start, end + 1)
            kind = rng.choice(["put", "get", "get", "cas", "delete"])
            counter += 1
            unknown = kind != "get" and rng.random() < unknown_rate
            pending.append((effect, start, end, client, kind, f"k{rng.randrange(keys)}", f"v{counter}",
                            rng.choice([None, f"v{rng.randrange(1, counter + 1)}"]), unknown))  # fmt: skip
            t = end + rng.randrange(0, 5)
    history = []
    for _effect, start, end, client, kind, key, value, expected, unknown in sorted(pending):
        current = store.get(key)
        if unknown and rng.random() < 0.5:
            history.append(Operation(client, kind, key, value, expected, start, None, None))
            continue  # it never took effect
        if kind == "put":
            store[key] = value
            history.append(Operation(client, kind, key, value, None, start, end, True))
        elif kind == "get":
            history.append(Operation(client, kind, key, current, None, start, end, True))
        elif kind == "delete":
            store[key] = None
            history.append(Operation(client, kind, key, None, None, start, end, True))
        else:
            swapped = current == expected
            if swapped:
                store[key] = value
            history.append(Operation(client, kind, key, value, expected, start, None if unknown else end,
                                     None if unknown else swapped))  # fmt: skip
    return history


@pytest.mark.parametrize("seed", range(12))
def test_random_linearizable_histories_pass(seed):
    result = check(_simulate(seed))
    assert result.ok is True, result.explain()


@pytest.mark.parametrize("seed", range(12))
def test_one_injected_stale_read_fails(seed):
    history = _simulate(seed)
    # A read that returns a value overwritten by a write that ended before the read started.
    by_key: dict[str, list[Operation]] = {}
    for o in history:
        by_key.setdefault(o.key, []).append(o)
    for key, ops in sorted(by_key.items()):
        writes = sorted((o for o in ops if o.kind == "put" and o.known), key=lambda o: o.end_ns)
        for first, second in zip(writes, writes[1:], strict=False):
            if first.end_ns < second.start_ns:
                later = max(o.end_ns or o.start_ns for o in ops) + 10
                stale = Operation(99, "get", key, first.value, None, later, later + 1, True)
                result = check([*history, stale])
                assert result.ok is False
                assert key in result.explain()
                return
    pytest.skip("no two ordered writes to inject a stale read between")


def test_five_clients_two_thousand_operations_each_on_twenty_keys():
    history = _simulate(7, clients=5, ops_per_client=2000, keys=20)
    assert len(history) == 10_000
    assert check(history).ok is True

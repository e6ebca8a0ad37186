"""The checks can fail: with a known raft bug switched on, the seed sweep reports a violation."""

import pytest

from flotilla.raft import Bug
from flotilla.raft.bugs import injected
from flotilla.sim import run_seed

# Each bug with the property the simulator must report. The sweep stops at the first violation;
# the seeds are deterministic, so each case runs a handful of seeds.
DETECTED = {
    Bug.DOUBLE_VOTE: "two leaders in term",
    Bug.KEEP_CONFLICTING_SUFFIX: "committed",
    Bug.READ_WITHOUT_QUORUM: "stale read",
    Bug.VOTE_FOR_STALE_LOG: "leader completeness",
}
MAX_SEEDS = 200


def _first_violation(bug: Bug) -> tuple[int, str] | None:
    with injected(bug):
        for seed in range(MAX_SEEDS):
            outcome = run_seed(seed)
            if not outcome.ok:
                return seed, outcome.violation
    return None


@pytest.mark.parametrize("bug", list(DETECTED), ids=lambda b: b.name)
def test_sweep_reports_injected_bug(bug: Bug):
    found = _first_violation(bug)
    assert found is not None, f"{bug.name} ({bug.value}) went unnoticed in {MAX_SEEDS} seeds"
    seed, violation = found
    assert DETECTED[bug] in violation, f"seed {seed}: unexpected violation for {bug.name}: {violation}"


def test_no_bug_is_active_outside_injection():
    from flotilla.raft import bugs

    assert bugs.ACTIVE == frozenset()
    with injected(Bug.DOUBLE_VOTE):
        assert bugs.ACTIVE == {Bug.DOUBLE_VOTE}
    assert bugs.ACTIVE == frozenset()

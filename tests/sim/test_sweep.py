"""The seed sweep CI runs: 500 seeds of faults, no violation, and every run makes progress."""

import os

from flotilla.sim import replay_command, sweep

CI_SEEDS = range(0, 500)


def test_sweep_of_500_seeds_finds_no_violation():
    summary = sweep(CI_SEEDS, workers=min(4, os.cpu_count() or 1))
    print(summary.line())
    report = "\n".join(
        f"seed {o.seed}: {o.violation}\n  replay: {replay_command(o.seed)}" for o in summary.failures
    )
    assert not summary.failures, report
    assert summary.seeds == len(CI_SEEDS)
    # Faults must not make the sweep vacuous: clusters commit and reads get checked.
    assert summary.committed > 100 * len(CI_SEEDS)
    assert summary.reads_checked > 100 * len(CI_SEEDS)

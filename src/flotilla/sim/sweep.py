"""Run many seeds (in worker processes) and summarize; every failure names its replay command."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .config import SimConfig
from .simulation import Outcome, Simulation


def replay_command(seed: int) -> str:
    return f"flotilla sim run --seed {seed} --trace"


def run_seed(seed: int, trace: Callable[[str], None] | None = None) -> Outcome:
    return Simulation(SimConfig.from_seed(seed), trace=trace).run()


@dataclass
class Summary:
    seeds: int = 0
    committed: int = 0
    events: int = 0
    reads_checked: int = 0
    failures: list[Outcome] = field(default_factory=list)
    elapsed_s: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.seeds += 1
        self.committed += outcome.committed
        self.events += outcome.events
        self.reads_checked += outcome.reads_checked
        if not outcome.ok:
            self.failures.append(outcome)

    def line(self) -> str:
        return (
            f"seeds={self.seeds} violations={len(self.failures)} committed_entries={self.committed} "
            f"reads_checked={self.reads_checked} events={self.events} elapsed={self.elapsed_s:.1f}s"
        )


def sweep(
    seeds: Iterable[int],
    workers: int = 1,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> Summary:
    """Run every seed; ``workers`` > 1 spreads them over processes (each seed is independent)."""
    summary = Summary()
    started = time.monotonic()
    seeds = list(seeds)
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            outcomes = pool.imap_unordered(run_seed, seeds, chunksize=16)
            for outcome in outcomes:
                summary.add(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
    else:
        for seed in seeds:
            outcome = run_seed(seed)
            summary.add(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    summary.failures.sort(key=lambda o: o.seed)
    summary.elapsed_s = time.monotonic() - started
    return summary

"""`flotilla sim`: run one seed (replay) or sweep a range of seeds through the raft simulator."""

from __future__ import annotations

import os
import sys

import click

from flotilla.sim import SimConfig, replay_command, run_seed, sweep

__all__ = ["command"]


@click.group("sim", help="Deterministic cluster simulation: one seed, or a sweep of seeds.")
def command() -> None:
    pass


def _parse_range(text: str) -> range:
    """'N' (one seed), 'A-B' (inclusive) or 'A:B' (exclusive end)."""
    try:
        if "-" in text:
            low, high = text.split("-", 1)
            return range(int(low), int(high) + 1)
        if ":" in text:
            low, high = text.split(":", 1)
            return range(int(low), int(high))
        return range(int(text), int(text) + 1)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a seed range; use N, A-B (inclusive) or A:B") from None


@command.command("run")
@click.option("--seed", type=int, required=True, help="The seed to run (every fault derives from it).")
@click.option("--trace/--no-trace", default=False, help="Print every fault and raft message.")
def run_command(seed: int, trace: bool) -> None:
    """Run one seed and report; exit 1 on a violation."""
    config = SimConfig.from_seed(seed)
    click.echo(f"seed {seed}: {config.describe()}")
    outcome = run_seed(seed, trace=click.echo if trace else None)
    click.echo(
        f"seed {seed}: committed_entries={outcome.committed} writes_acked={outcome.writes_acked} "
        f"reads_checked={outcome.reads_checked} events={outcome.events} virtual={outcome.virtual_s:.2f}s"
    )
    if outcome.violation:
        click.echo(f"VIOLATION seed {seed}: {outcome.violation}", err=True)
        click.echo(f"replay: {replay_command(seed)}", err=True)
        sys.exit(1)
    click.echo("ok")


@command.command("sweep")
@click.option("--seeds", "seed_range", default="0:500", show_default=True, help="N, A-B (inclusive) or A:B.")
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default=True)
def sweep_command(seed_range: str, workers: int) -> None:
    """Run a range of seeds; print each failure with its replay command and a summary line."""
    seeds = _parse_range(seed_range)

    def report(outcome) -> None:
        if not outcome.ok:
            click.echo(f"VIOLATION seed {outcome.seed}: {outcome.violation}", err=True)
            click.echo(f"  replay: {replay_command(outcome.seed)}", err=True)

    summary = sweep(seeds, workers=max(1, workers), on_outcome=report)
    click.echo(summary.line())
    if summary.failures:
        sys.exit(1)

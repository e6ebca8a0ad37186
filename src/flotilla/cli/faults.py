"""`flotilla faults run`: randomized fault runs against real member processes, each checked for
linearizability and convergence. Exit code 0 when every run passed, 1 when one failed."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import click

__all__ = ["command"]


@click.group("faults")
def command() -> None:
    """Fault runs against real clusters (kill -9, SIGSTOP, partitions, membership changes)."""


@command.command("run")
@click.option("--runs", default=1, show_default=True, help="How many runs (each with its own seed).")
@click.option("--members", default=3, show_default=True, type=click.IntRange(3, 7))
@click.option("--seconds", default=15.0, show_default=True, help="Seconds of load and faults per run.")
@click.option("--seed", default=None, type=int, help="Seed of the first run (default: random); then +1 each.")
@click.option("--netns/--no-netns", default=False, help="Members in network namespaces (partitions; root).")
@click.option("--impl", default="flotilla", type=click.Choice(["flotilla", "etcd"]), show_default=True)
@click.option("--clients", default=6, show_default=True)
@click.option("--keep-failures", default=None, type=click.Path(path_type=Path),
              help="Directory for a failing run's history, verdict and member logs.")  # fmt: skip
@click.option("--fault", "faults", multiple=True, help="Only these faults (repeatable; default: all).")
def run(runs: int, members: int, seconds: float, seed: int | None, netns: bool, impl: str, clients: int,
        keep_failures: Path | None, faults: tuple[str, ...]) -> None:  # fmt: skip
    """Run randomized fault runs; one line per run, a summary at the end."""
    from flotilla.faults import FAULTS, RunSettings, run_once

    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise click.UsageError(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}")
    first = seed if seed is not None else random.randrange(1 << 31)
    failed = 0
    for i in range(runs):
        settings = RunSettings(
            members=members, seconds=seconds, seed=first + i, impl=impl, netns=netns, clients=clients,
            faults=tuple(faults) or FAULTS, keep_failures=keep_failures,
        )  # fmt: skip
        result = run_once(settings)
        click.echo(f"run {i + 1}/{runs} {result.summary()}")
        if not result.ok:
            failed += 1
            click.echo(result.detail, err=True)
            if result.kept:
                click.echo(f"  kept in {result.kept}", err=True)
    click.echo(f"{runs - failed}/{runs} runs passed ({impl}, {members} members, {seconds:g}s each, "
               f"seeds {first}..{first + runs - 1}{', netns' if netns else ''})")  # fmt: skip
    sys.exit(1 if failed else 0)

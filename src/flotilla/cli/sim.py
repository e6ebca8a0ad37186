"""`flotilla sim`: deterministic cluster simulation (placeholder; the simulator fills it in)."""

import click

__all__ = ["command"]

command = click.Group("sim", help="Deterministic cluster simulation (seed runs and sweeps).")

"""`flotilla etcd`: run a store member, configured with etcd 3.4's flags and ``ETCD_*`` variables.

etcd's flags follow Go's syntax (``-name x``, ``-enable-v2``, ``--snapshot-count=5``), not click's, so this
command hands every argument untouched to :func:`flotilla.etcd.config.parse_args`. Exit codes: 0 after
``--help`` or ``--version``, 2 for a configuration etcd would refuse, otherwise the member's.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from flotilla.etcd.config import ConfigError, HelpRequested, parse_args, usage, version_text

__all__ = ["command"]

# etcd 3.4's default (capnslog) log line: "2026-11-22 06:18:00.962312 W | pkg/flags: message".
_LOG_FORMAT = "%(asctime)s.%(msecs)03d000 %(levelname).1s | %(name)s: %(message)s"
_LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class _GoFlagsCommand(click.Command):
    """A command that gives its callback the raw argument list: click must not read ``--``, ``-h`` or
    anything else, since Go's flag syntax gives them other meanings."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.params["argv"] = tuple(args)
        return []


@click.command(
    "etcd",
    cls=_GoFlagsCommand,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
def command(argv: tuple[str, ...]) -> None:
    """Run an etcd 3.4 compatible store member (etcd's flags; see `flotilla etcd --help`)."""
    # Before parse_args: it logs what etcd logs while reading flags (variables used, unrecognized, ...).
    # basicConfig does nothing when the caller configured logging already.
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT, datefmt=_LOG_DATE_FORMAT, stream=sys.stderr)
    try:
        config = parse_args(list(argv), os.environ)
    except HelpRequested:
        click.echo(usage(), nl=False)
        sys.exit(0)
    except ConfigError as e:
        click.echo(f"flotilla etcd: {e}", err=True)
        sys.exit(2)
    if config.version:
        click.echo(version_text(), nl=False)
        sys.exit(0)
    # Imported here so that parsing flags, --help and --version need nothing of the member.
    from flotilla.etcd.member import run_member

    sys.exit(run_member(config))

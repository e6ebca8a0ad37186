"""`flotilla cloudinit`: validate a #cloud-config like `coreos-cloudinit -validate`, or apply it under a root.

Exit codes: 0 when the document has no errors (warnings are printed but do not fail), 1 when it has
errors or cannot be applied, 2 for bad usage.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["command"]


@click.group("cloudinit")
def command() -> None:
    """Read and apply cloud-config documents (#cloud-config) as coreos-cloudinit does."""


def _read(file: str) -> tuple[str, str]:
    """(text, name to print) of FILE, or of stdin for "-"."""
    if file == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(file).read_text(encoding="utf-8"), file
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"{file}: cannot read it: {error}") from None


@command.command("validate")
@click.argument("file", metavar="FILE")
def validate_command(file: str) -> None:
    """Check FILE ("-" for stdin) and print one `line N: error|warning: message` per problem.

    Exits 1 if there is any error, 0 if there are only warnings or nothing (coreos-cloudinit exits 1 on
    any entry; warnings such as unknown keys do not stop a Flotilla machine from booting).
    """
    from flotilla.cloudinit import validate

    text, _ = _read(file)
    report = validate(text)
    for line in report.lines():
        click.echo(line)
    if report.has_errors:
        sys.exit(1)


@command.command("apply")
@click.option(
    "--root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The machine's root directory: every file is written under it (never the host's /etc).",
)
@click.option("--private-ipv4", default="", help="Value of $private_ipv4 (and COREOS_PRIVATE_IPV4).")
@click.option("--public-ipv4", default="", help="Value of $public_ipv4 (and COREOS_PUBLIC_IPV4).")
@click.option("--private-ipv6", default="", help="Value of $private_ipv6 (and COREOS_PRIVATE_IPV6).")
@click.option("--public-ipv6", default="", help="Value of $public_ipv6 (and COREOS_PUBLIC_IPV6).")
@click.argument("file", metavar="FILE")
def apply_command(
    root: Path, private_ipv4: str, public_ipv4: str, private_ipv6: str, public_ipv6: str, file: str
) -> None:
    """Validate FILE ("-" for stdin), then write what it configures under --root.

    Nothing is written if the document has errors. Units are placed, not started: the unit commands,
    units to enable and daemon settings the boot would act on are printed.
    """
    from flotilla.cloudinit import CloudInitError, apply, check

    text, name = _read(file)
    values = {
        "private_ipv4": private_ipv4,
        "public_ipv4": public_ipv4,
        "private_ipv6": private_ipv6,
        "public_ipv6": public_ipv6,
    }
    try:
        config, report = check(text, substitutions=values)
    except ValueError as error:  # a substitution value with a line break
        raise click.UsageError(str(error)) from None
    for line in report.lines(name):
        click.echo(line, err=True)
    if config is None:
        click.echo(f"{name}: not applied ({len(report.errors)} error(s))", err=True)
        sys.exit(1)
    try:
        applied = apply(config, root, values)
    except CloudInitError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    for path in applied.written:
        click.echo(f"wrote {path}")
    for path in applied.removed:
        click.echo(f"removed {path}")
    for unit in applied.enable:
        click.echo(f"enable {unit}")
    for unit, unit_command in applied.commands:
        click.echo(f"{unit_command} {unit}")
    for path, owner in applied.owners_not_applied:
        click.echo(f"owner {owner} of {path} not applied (needs root and the user in {root}/etc/passwd)")

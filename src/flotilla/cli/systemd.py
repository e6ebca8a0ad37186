"""``flotilla systemd --root DIR``: run the embedded unit manager for one root directory."""

from __future__ import annotations

import asyncio
import socket

import click

from flotilla.systemd import Layout, run_daemon

__all__ = ["command"]


def _assignments(values: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--setenv")
        env[key] = rest
    return env


@click.command(name="systemd")
@click.option(
    "--root",
    envvar="FLOTILLA_SYSTEMD_ROOT",
    required=True,
    type=click.Path(file_okay=False),
    help="The machine's root directory: unit files under DIR/etc/systemd/system, journal under "
    "DIR/var/log/journal, control socket under DIR/run.",
)
@click.option(
    "--setenv",
    "setenv",
    multiple=True,
    metavar="KEY=VALUE",
    help="Add to every unit's environment (systemd's DefaultEnvironment=); repeatable.",
)
@click.option("--hostname", default=None, help="The %H specifier and the journal's host name.")
@click.option(
    "--no-cgroups", is_flag=True, help="Track units by process tags even where cgroup v2 is writable."
)
def command(root: str, setenv: tuple[str, ...], hostname: str | None, no_cgroups: bool) -> None:
    """Run the local unit manager (systemd's semantics, embedded) until SIGTERM or SIGINT.

    On start it starts default.target (what is enabled for multi-user.target); on SIGTERM it stops every
    unit, dependents first, and exits. It listens only on a unix socket under ROOT.
    """
    layout = Layout.at(root)
    layout.make_dirs()
    if layout.socket_path.exists() and _answers(str(layout.socket_path)):
        raise click.ClickException(f"a unit manager already runs for {layout.root} ({layout.socket_path})")
    asyncio.run(
        run_daemon(
            root,
            default_env=_assignments(setenv),
            hostname=hostname or socket.gethostname(),
            use_cgroups=not no_cgroups,
        )
    )


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()

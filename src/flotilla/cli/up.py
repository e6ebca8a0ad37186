"""``flotilla up``: bring up a local cluster (a discovery service and N machines on 127.0.0.2, ...) and
print what to type next.

Exit codes: 0 once the store has a leader and fleet sees every machine; 1 when a cluster already runs in
the state directory, the input is wrong, or a milestone was not reached in time (everything started is
stopped again); 2 for bad usage.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import click

__all__ = ["command", "state_dir_option"]

state_dir_option = click.option(
    "--state-dir",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the cluster lives (machine roots, logs, discovery data). "
    "Default: $FLOTILLA_STATE_DIR, or ~/.flotilla.",
)


def resolve_state_dir(state_dir: Path | None) -> Path:
    from flotilla.localcluster import default_state_dir

    return (state_dir or default_state_dir()).expanduser().absolute()


def _activate_script() -> str:
    """The venv's activate script when flotilla runs from a venv whose commands are not on PATH (as
    under scripts/up), so the user's shell finds etcdctl, fleetctl and flotilla."""
    if sys.prefix == sys.base_prefix:
        return ""
    bin_dir = Path(sys.prefix) / "bin"
    found = shutil.which("fleetctl")
    if found and Path(found).parent.absolute() == bin_dir.absolute():
        return ""
    activate = bin_dir / "activate"
    return str(activate) if activate.exists() else ""


def _next_steps(state_dir: Path) -> str:
    from flotilla.localcluster import default_state_dir, next_steps, read_record
    from flotilla.machine import read_state

    record = read_record(state_dir)
    assert record is not None, "up returned without a record"
    states = [read_state(entry.root) for entry in record.machines]
    endpoints = [url for state in states if state is not None for url in state.etcd_endpoints]
    default = default_state_dir().expanduser().absolute() == state_dir
    return next_steps(
        etcd_endpoints=endpoints, activate=_activate_script(),
        state_dir_export="" if default else str(state_dir),
    )  # fmt: skip


@click.command("up")
@click.option("-n", "--size", default=3, show_default=True, type=click.IntRange(1, 250),
              help="How many machines (m1 on 127.0.0.2, m2 on 127.0.0.3, ...).")  # fmt: skip
@click.option(
    "--cloud-config",
    "cloud_config",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A #cloud-config for every machine; its discovery URL is replaced by a new local token. "
    "Default: etcd2 + fleet started, the store on the ports below.",
)
@state_dir_option
@click.option("--client-port", default=2379, show_default=True, type=click.IntRange(1, 65535),
              help="The store's client port on each machine's address (default cloud-config).")  # fmt: skip
@click.option("--peer-port", default=2380, show_default=True, type=click.IntRange(1, 65535),
              help="The store's peer port on each machine's address (default cloud-config).")  # fmt: skip
@click.option("--timeout", "timeout_s", default=60.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds to wait for the cluster before giving up and stopping it.")  # fmt: skip
def command(
    size: int, cloud_config: Path | None, state_dir: Path | None, client_port: int, peer_port: int,
    timeout_s: float,
) -> None:  # fmt: skip
    """Bring up a local cluster: start a discovery service, boot N machines from a cloud-config, wait
    until the store has a leader and fleet sees every machine, then print what to type next.

    The state directory is $FLOTILLA_STATE_DIR, or ~/.flotilla, unless --state-dir says otherwise."""
    from flotilla.localcluster import LocalClusterError, UpOptions, up

    if client_port == peer_port:
        raise click.UsageError("--client-port and --peer-port must differ")
    where = resolve_state_dir(state_dir)
    options = UpOptions(
        state_dir=where, size=size, cloud_config=cloud_config, client_port=client_port,
        peer_port=peer_port, timeout_s=timeout_s,
    )  # fmt: skip
    started = time.monotonic()

    def echo(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    echo(f"flotilla up: {size} machine(s) in {where}")
    try:
        up(options, echo=echo)
    except LocalClusterError as error:
        click.echo(f"flotilla up: {error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("flotilla up: interrupted; what was started has been stopped", err=True)
        sys.exit(130)
    echo(f"\nCluster up: {size} machine(s) in {time.monotonic() - started:.1f} s. Next, type:\n")
    echo(_next_steps(where).rstrip("\n"))
    sys.stdout.flush()

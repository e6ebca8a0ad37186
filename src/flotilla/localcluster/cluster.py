"""A local cluster: ``up`` (discovery service, token, N machines, wait for the milestones), ``down``,
``kill`` and the processes of a state directory.

``up``'s contract: the record (:mod:`.record`) is written before anything starts and updated after each
process starts, so every process ``up`` started can be found from the state directory; on any failure
or interruption ``up`` stops all of them before it raises. Milestones, each reported as one line: the
discovery service answers; each machine has booted (its cloud-config's unit commands ran); the store has
a leader and N members; fleet sees N machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from flotilla.cloudinit import CloudConfigError, parse
from flotilla.fleetctl import MachineInfo
from flotilla.machine import (
    MachineError,
    MachineNotRunning,
    MachineProcess,
    MachineSpec,
    MachineState,
    boot,
    kill_machine,
    machine_pids,
    read_state,
    stop_machine,
    sweep,
)

from . import config, probe
from .discovery import (
    discovery_alive,
    discovery_pids,
    new_token,
    start_discovery,
    stop_discovery,
    wait_discovery_url,
)
from .errors import ClusterRunning, LocalClusterError, NoCluster, UnknownMachine, UpFailed
from .record import ClusterRecord, MachineEntry, read_record, record_path, write_record

Echo = Callable[[str], None]
_T = TypeVar("_T")

_POLL_S = 0.1
_STOP_S = 60.0
_UNIX_SOCKET_MAX = 107  # sun_path is 108 bytes with its terminating NUL


@dataclass(frozen=True)
class UpOptions:
    """What ``flotilla up`` was asked for."""

    state_dir: Path
    size: int = 3
    cloud_config: Path | None = None  # None: the default cloud-config (config.default_cloud_config)
    client_port: int = config.DEFAULT_CLIENT_PORT
    peer_port: int = config.DEFAULT_PEER_PORT
    timeout_s: float = 60.0


# --- the processes of a state directory -------------------------------------------------------------


def _machine_alive(entry: MachineEntry) -> bool:
    state = read_state(entry.root)
    return (state is not None and state.is_alive) or bool(machine_pids(entry.root))


def is_running(record: ClusterRecord) -> bool:
    """Whether anything of the cluster still runs (a machine, its processes, or the discovery service)."""
    return discovery_alive(record) or any(_machine_alive(m) for m in record.machines)


def cluster_pids(state_dir: str | Path) -> set[int]:
    """Every live process of the cluster in ``state_dir``: machines, their managers and units, discovery."""
    record = read_record(Path(state_dir).absolute())
    if record is None:
        return set()
    found = discovery_pids(record)
    for entry in record.machines:
        found |= machine_pids(entry.root)
        state = read_state(entry.root)
        if state is not None and state.is_alive:
            found.add(state.pid)
    return found


# --- up ---------------------------------------------------------------------------------------------------


def _load_user_config(path: Path) -> str:
    """The user's cloud-config text, validated as machine m1 would see it (errors with file:line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LocalClusterError(
            f"{path}: cannot read the cloud-config ({error}); check --cloud-config"
        ) from None
    substitutions = {"private_ipv4": config.machine_ip(0), "public_ipv4": config.machine_ip(0)}
    try:
        parse(text, source=str(path), substitutions=substitutions)
    except CloudConfigError as error:
        raise LocalClusterError(f"{error}\nfix the cloud-config, then run flotilla up again") from None
    return text


def _check_ports(options: UpOptions) -> None:
    """Refuse ports another program (or another cluster) holds on the machines' addresses, before
    anything starts: the members would otherwise fail one by one."""
    for index in range(options.size):
        ip = config.machine_ip(index)
        for what, port in (("--client-port", options.client_port), ("--peer-port", options.peer_port)):
            with socket.socket() as probe_socket:
                try:
                    probe_socket.bind((ip, port))
                except OSError as error:
                    raise LocalClusterError(
                        f"{ip}:{port} is in use ({error.strerror}): another cluster or program holds it; "
                        f"stop it (flotilla down --state-dir ...) or pick another {what}"
                    ) from None


def _check_socket_paths(state_dir: Path, size: int) -> None:
    """Each machine's unit manager listens on a unix socket under its root, whose address holds at most
    107 bytes: a long state directory is refused now rather than as a manager failing to start."""
    longest = state_dir / config.machine_name(size - 1) / "run/flotilla-systemd/manager.sock"
    if len(os.fsencode(str(longest))) > _UNIX_SOCKET_MAX:
        raise LocalClusterError(
            f"{state_dir}: too long a path for the machines' unix sockets ({longest} is over "
            f"{_UNIX_SOCKET_MAX} bytes); give a shorter --state-dir"
        )


def _set_aside_previous(state_dir: Path, echo: Echo) -> None:
    """A stopped cluster's machines keep their store data, which a new discovery token cannot join: they
    are moved to ``previous/`` (replacing an older one), so a new ``up`` starts afresh and nothing the
    user may want to read is deleted at once."""
    old = read_record(state_dir)
    if old is None:
        return
    previous = state_dir / "previous"
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir(parents=True)
    for entry in old.machines:
        for path in (Path(entry.root), Path(entry.log), Path(entry.cloud_config)):
            if path.exists():
                shutil.move(str(path), str(previous / path.name))
    for path in (old.discovery_data_dir, old.discovery_log, record_path(state_dir)):
        if path.exists():
            shutil.move(str(path), str(previous / path.name))
    echo(f"the stopped cluster's files in {state_dir} moved to {previous}")


def up(options: UpOptions, *, echo: Echo = print) -> ClusterRecord:
    """Bring up the cluster; returns its record once every milestone is reached.

    ClusterRunning if one already runs in the state directory; UpFailed (after stopping everything it
    started) if a milestone is not reached within ``options.timeout_s``; LocalClusterError for bad
    input (nothing started)."""
    state_dir = options.state_dir.expanduser().absolute()
    if not 1 <= options.size <= config.MAX_MACHINES:
        raise LocalClusterError(f"-n {options.size}: a cluster has 1 to {config.MAX_MACHINES} machines")
    existing = read_record(state_dir)
    if existing is not None and is_running(existing):
        raise ClusterRunning(
            f"a cluster is already running in {state_dir} ({len(existing.machines)} machines); "
            "see it with: flotilla status; stop it with: flotilla down"
        )
    _check_socket_paths(state_dir, options.size)
    user_text = _load_user_config(options.cloud_config) if options.cloud_config else None
    if user_text is None:
        _check_ports(options)
    _set_aside_previous(state_dir, echo)
    started = time.monotonic()
    record = ClusterRecord(
        state_dir=str(state_dir), size=options.size, client_port=options.client_port,
        peer_port=options.peer_port,
        cloud_config_source=str(options.cloud_config.absolute()) if options.cloud_config else "",
    )  # fmt: skip
    write_record(record)
    machines: list[MachineProcess] = []
    try:
        return _bring_up(record, options, user_text, machines, started, echo)
    except BaseException as error:
        echo("stopping what was started ...")
        _stop_started(machines)
        with contextlib.suppress(Exception):
            down(state_dir, echo=lambda line: echo(f"  {line}"))
        if isinstance(error, MachineError):
            raise UpFailed(str(error)) from error
        raise


def _stop_started(machines: list[MachineProcess]) -> None:
    """Stop the machines ``up`` booted through their handles: one still validating its cloud-config has
    no state file yet, so ``down`` (which works from the state files) would miss it."""
    if not machines:
        return
    with ThreadPoolExecutor(max_workers=len(machines)) as pool:
        for _ in pool.map(lambda machine: machine.stop(timeout_s=_STOP_S), machines):
            pass


def _elapsed(started: float) -> str:
    return f"[{time.monotonic() - started:5.1f}s]"


def _bring_up(
    record: ClusterRecord,
    options: UpOptions,
    user_text: str | None,
    machines: list[MachineProcess],
    started: float,
    echo: Echo,
) -> ClusterRecord:
    deadline = started + options.timeout_s
    discovery = start_discovery(record)
    record = replace(record, discovery_pid=discovery.pid)
    write_record(record)
    url = wait_discovery_url(discovery, record.discovery_log, deadline)
    token = new_token(url, options.size)
    record = replace(record, discovery_url=url, token_url=token)
    write_record(record)
    echo(f"{_elapsed(started)} discovery service up at {url} (token for {options.size}: {token})")
    if user_text is not None:
        user_text, replaced = config.replace_discovery(user_text, token)
        if not replaced:
            echo(f"note: {options.cloud_config} has no discovery URL; the machines boot from it as written")
    state_dir = Path(record.state_dir)
    for index in range(options.size):
        name = config.machine_name(index)
        text = user_text or config.default_cloud_config(index, token, options.client_port, options.peer_port)
        cloud_config = state_dir / f"{name}.yaml"
        cloud_config.write_text(text)
        entry = MachineEntry(name, config.machine_ip(index), str(state_dir / name), str(cloud_config),
                             str(state_dir / f"{name}.log"))  # fmt: skip
        spec = MachineSpec(root=Path(entry.root), cloud_config=cloud_config, ip=entry.ip)
        machines.append(boot(spec, log_path=Path(entry.log), wait=False, detach=True))
        record = record.with_machine(entry)
        write_record(record)
    asyncio.run(_wait_milestones(record, machines, deadline, started, echo))
    return record


async def _wait_milestones(
    record: ClusterRecord, machines: list[MachineProcess], deadline: float, started: float, echo: Echo
) -> None:
    states = await _wait_booted(record, machines, deadline, started, echo)
    endpoints = [url for state in states for url in state.etcd_endpoints]
    members = await _wait_for(
        lambda: probe.store_members(endpoints),
        lambda rows: len(rows) >= record.size,
        f"the store to have a leader and {record.size} members",
        record, deadline,
    )  # fmt: skip
    leader = next((m.name for m in members if m.is_leader), "?")
    echo(f"{_elapsed(started)} store has a leader ({leader}) with {len(members)} members")
    sockets = [state.fleet_socket for state in states]
    seen = await _wait_for(
        lambda: _fleet_from_any(sockets), lambda rows: len(rows) >= record.size,
        f"fleet to see {record.size} machines", record, deadline,
    )  # fmt: skip
    echo(f"{_elapsed(started)} fleet sees {len(seen)} machines")


async def _fleet_from_any(sockets: list[str]) -> list[MachineInfo] | None:
    for fleet_socket in sockets:
        seen = await probe.fleet_machines(fleet_socket)
        if seen is not None:
            return seen
    return None


async def _wait_for(
    ask: Callable[[], Awaitable[_T | None]],
    good: Callable[[_T], bool],
    what: str,
    record: ClusterRecord,
    deadline: float,
) -> _T:
    """Ask until the answer is good; UpFailed naming ``what`` and where to look at the deadline."""
    while True:
        answer = await ask()
        if answer is not None and good(answer):
            return answer
        if time.monotonic() > deadline:
            raise UpFailed(f"timed out: {what} did not happen in time.\n{_where_to_look(record)}")
        await asyncio.sleep(_POLL_S * 3)


async def _wait_booted(
    record: ClusterRecord, machines: list[MachineProcess], deadline: float, started: float, echo: Echo
) -> list[MachineState]:
    booted: dict[str, MachineState] = {}
    while len(booted) < len(machines):
        for entry, machine in zip(record.machines, machines, strict=True):
            if entry.name in booted:
                continue
            state = read_state(entry.root)
            if state is not None and state.pid == machine.pid and state.phase == "running":
                booted[entry.name] = state
                echo(f"{_elapsed(started)} machine {entry.name} booted ({entry.ip}, pid {machine.pid})")
            elif machine.poll() is not None or (state is not None and state.phase == "failed"):
                detail = f": {state.detail}" if state is not None and state.detail else ""
                raise UpFailed(f"machine {entry.name} failed to boot{detail}\nits output: {entry.log}\n"
                               f"{machine.log().rstrip()}")  # fmt: skip
        if len(booted) < len(machines) and time.monotonic() > deadline:
            waiting = ", ".join(m.name for m in record.machines if m.name not in booted)
            raise UpFailed(f"timed out: machine(s) {waiting} did not boot in time.\n{_where_to_look(record)}")
        await asyncio.sleep(_POLL_S)
    return [booted[entry.name] for entry in record.machines]


def _where_to_look(record: ClusterRecord) -> str:
    lines = ["look at the machines' output and journals:"]
    for entry in record.machines:
        lines.append(f"  {entry.log}   flotilla journalctl --root {entry.root} -n 50")
    lines.append(f"  discovery service: {record.discovery_log}")
    return "\n".join(lines)


# --- down, kill ------------------------------------------------------------------------------------------


def _stop_one(entry: MachineEntry) -> str:
    """Stop one machine cleanly; returns the line to report."""
    try:
        state = stop_machine(entry.root, timeout_s=_STOP_S)
        result = f"machine {entry.name} stopped ({state.phase})"
    except MachineNotRunning:
        result = ""
    left = machine_pids(entry.root)
    if left:  # a machine killed by `flotilla kill` whose guard has not finished, or a stray unit
        sweep(entry.root)
        result = result or f"machine {entry.name}: {len(left)} leftover process(es) killed"
    return result


def down(state_dir: str | Path, *, purge: bool = False, echo: Echo = print) -> bool:
    """Stop every machine cleanly (fleet before the store on each) and the discovery service; keep the
    roots and logs unless ``purge``. Returns whether anything was running; idempotent."""
    state_dir = Path(state_dir).expanduser().absolute()
    record = read_record(state_dir)
    was_running = False
    if record is not None:
        with ThreadPoolExecutor(max_workers=max(1, len(record.machines))) as pool:
            for line in pool.map(_stop_one, record.machines):  # in parallel: each takes a few seconds
                if line:
                    was_running = True
                    echo(line)
        if stop_discovery(record):
            was_running = True
            echo("discovery service stopped")
    if not was_running:
        echo(f"no cluster running in {state_dir}")
    if purge and state_dir.exists():
        shutil.rmtree(state_dir)
        echo(f"removed {state_dir}")
    elif was_running and record is not None:
        echo(f"machine roots and logs kept in {state_dir} (flotilla down --purge removes them)")
    return was_running


def require_record(state_dir: str | Path) -> ClusterRecord:
    """The cluster of ``state_dir``; NoCluster (saying how to make one) if there is none."""
    state_dir = Path(state_dir).expanduser().absolute()
    record = read_record(state_dir)
    if record is None:
        raise NoCluster(f"no cluster in {state_dir}; start one with: flotilla up (or give --state-dir)")
    return record


def kill(state_dir: str | Path, machine: str) -> tuple[MachineEntry, MachineState]:
    """Kill one machine as a host failure would (SIGKILL, nothing of it survives)."""
    record = require_record(state_dir)
    entry = record.find(machine)
    if entry is None:
        known = ", ".join(f"{m.name} ({m.ip})" for m in record.machines) or "none"
        raise UnknownMachine(
            f"no machine {machine!r} in the cluster in {record.state_dir}; machines: {known}"
        )
    try:
        return entry, kill_machine(entry.root)
    except MachineNotRunning:
        state = read_state(entry.root)
        phase = state.phase if state is not None else "never booted"
        raise LocalClusterError(
            f"machine {entry.name} ({entry.ip}) is not running ({phase}); flotilla status shows the machines"
        ) from None

"""Issue 8's acceptance: `flotilla up` brings up 3 machines, and the README's walkthrough works as written.

The test is a user in a fresh terminal: HOME is a directory of its own (so `~/.flotilla` is the test's),
the checkout's `.venv` is where the walkthrough's `source .venv/bin/activate` finds it, and every command
of the README's walkthrough runs, in order, in one bash session. The only change to the text is etcd's
ports: the test's cluster listens on free ports (passed to `flotilla up` as --client-port/--peer-port),
never on 2379/2380 of the host.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from localcluster_harness import (  # noqa: E402
    FLOTILLA,
    README,
    VENV,
    BashSession,
    Ran,
    cluster_ports,
    split_commands,
    user_env,
    walkthrough_blocks,
    with_ports,
)

from flotilla.localcluster import cluster_pids, down, read_record  # noqa: E402
from flotilla.machine import machine_pids  # noqa: E402

pytestmark = pytest.mark.slow

_MOVE_S = 60.0  # fleet's default agent TTL is 2 s; this only bounds a busy machine
_JOURNAL_S = 20.0


def _machine_of(list_units: str) -> str:
    """The address in hello.service's MACHINE column (``1a158203.../127.0.0.4``)."""
    match = re.search(r"^hello\.service\s+\S+/(\S+)\s+active\s+running", list_units, re.MULTILINE)
    return match.group(1) if match else ""


def _rerun_until(session: BashSession, command: str, good, timeout_s: float) -> Ran:  # type: ignore[no-untyped-def]
    """Type ``command`` again until its output is ``good`` (what a user does with an eventually consistent
    view such as fleet's); the last run is returned either way."""
    deadline = time.monotonic() + timeout_s
    ran = session.history[-1]
    while not (ran.status == 0 and good(ran.output)) and time.monotonic() < deadline:
        time.sleep(1)
        ran = session.run(command)
    return ran


def _check(session: BashSession, ran: Ran, condition: bool, what: str) -> None:
    assert condition, f"{what}\n--- transcript ---\n{session.transcript()}"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary directory: the machines' unix sockets live under it (at most 107 bytes), which
    pytest's own tmp_path is too deep for."""
    path = Path(tempfile.mkdtemp(prefix="flw-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_up_then_the_readme_walkthrough_as_written(
    short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = short_tmp / "home"
    work = short_tmp / "work"  # the user's checkout: hello.service is written here, not in the repository
    home.mkdir()
    work.mkdir()
    (work / ".venv").symlink_to(VENV)
    state_dir = home / ".flotilla"
    client_port, peer_port = cluster_ports()
    commands = [with_ports(c, client_port, peer_port) for b in walkthrough_blocks(README.read_text())
                for c in split_commands(b)]  # fmt: skip
    assert len(commands) >= 15, commands
    session = BashSession(work, user_env(home))
    try:
        up_line = f"{FLOTILLA} up --client-port {client_port} --peer-port {peer_port} --state-dir {state_dir}"
        started = time.monotonic()
        up = session.run(up_line, timeout_s=120)
        took_s = time.monotonic() - started
        with capsys.disabled():
            print(f"\n`flotilla up` of 3 machines took {took_s:.1f} s (issue 8 asks for under 20 s)")
        _check(session, up, up.status == 0, "flotilla up failed")
        for milestone in ("discovery service up at", "machine m1 booted", "machine m3 booted",
                          "store has a leader", "with 3 members", "fleet sees 3 machines"):  # fmt: skip
            _check(session, up, milestone in up.output, f"no progress line {milestone!r}")
        for command in commands[1:3]:  # the exports `up` prints are the walkthrough's
            command = command.replace("$HOME", str(home))
            _check(session, up, command in up.output, f"`up` does not print {command!r}")
        _check(
            session, up, f"source {VENV}/bin/activate" in up.output, "`up` does not print the activate line"
        )

        again = session.run(up_line)
        _check(session, again, again.status == 1 and "already running" in again.output, "second up")

        _walk(session, commands)

        _check(session, session.history[-1], session.history[-1].status == 0, "flotilla down failed")
        assert not cluster_pids(state_dir), "processes left after flotilla down"
        record = read_record(state_dir)
        assert record is not None and len(record.machines) == 3
        assert not any(machine_pids(m.root) for m in record.machines)
        assert all(Path(m.root, "var/log/journal").is_dir() for m in record.machines)  # logs kept
        again = session.run(f"{FLOTILLA} down --state-dir {state_dir}")
        _check(session, again, again.status == 0 and "no cluster running" in again.output, "down twice")
        status = session.run(f"{FLOTILLA} status --state-dir {state_dir}")
        _check(session, status, status.status == 1 and "stopped" in status.output, "status after down")
    finally:
        session.close()
        down(state_dir, echo=lambda line: None)
    assert not cluster_pids(state_dir)


def _walk(session: BashSession, commands: list[str]) -> None:
    """Every walkthrough command in order, each checked for what the tutorial says it shows."""
    first_machine = ""
    for command in commands:
        ran = session.run(command)
        if command.startswith("fleetctl journal"):
            ran = _rerun_until(session, command, lambda out: "Hello World" in out, _JOURNAL_S)
        elif command == "fleetctl list-units" and first_machine:
            ran = _rerun_until(
                session, command, lambda out, was=first_machine: _machine_of(out) not in ("", was), _MOVE_S
            )
        _check(session, ran, ran.status == 0, f"{command!r} exited {ran.status}")
        if "-XPUT" in command or command.startswith("curl -L"):
            _check(session, ran, '"value":"Hello world"' in ran.output, "the v2 key's value")
        elif command == "ETCDCTL_API=2 etcdctl get /message":
            _check(session, ran, ran.output.strip() == "Hello world", "etcdctl v2 get")
        elif command.startswith("ETCDCTL_API=2 etcdctl set"):
            _check(session, ran, ran.output.strip() == "Hello again", "etcdctl v2 set")
        elif command == "etcdctl get greeting":
            _check(session, ran, ran.output.strip() == "greeting\nHello v3", "etcdctl v3 get")
        elif command == "flotilla status":
            _check(session, ran, _status_ok(ran.output), "flotilla status")
            unknown = session.run("flotilla kill m9")
            _check(session, unknown, unknown.status == 1 and "no machine 'm9'" in unknown.output, "kill m9")
        elif command == "fleetctl start hello.service":
            _check(session, ran, "Unit hello.service launched on " in ran.output, "fleetctl start")
        elif command == "fleetctl list-units" and not first_machine:
            first_machine = _machine_of(ran.output)
            _check(session, ran, bool(first_machine), "hello.service running in list-units")
        elif command == "fleetctl list-units":
            _check(session, ran, _machine_of(ran.output) not in ("", first_machine), "the unit moved")
        elif command.startswith("flotilla kill"):
            _check(session, ran, re.search(r"machine m\d \(" + re.escape(first_machine), ran.output)
                   is not None, "flotilla kill names the unit's machine")  # fmt: skip


def _status_ok(output: str) -> bool:
    machines = re.findall(r"^(m[123])\s+(127\.0\.0\.[234])\s+running\s+\d+$", output, re.MULTILINE)
    members = re.findall(r"^m[123]\s+http://127\.0\.0\.[234]:\d+\s+(yes|no)$", output, re.MULTILINE)
    return len(machines) == 3 and sorted(members) == ["no", "no", "yes"] and "UNIT" in output

"""A review of the embedded unit manager against systemd's documented (and, where the docs are silent, coded)
behaviour. Each test names the clause it checks: systemd.service(5), systemd.kill(5), systemd.unit(5),
systemctl(1), or systemd's src/core/service.c where the manual does not say. Every job is bounded by a
guard so a hanging job fails its test instead of the run; the guard is not a timing assertion."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from supervisor_harness import Unitd

from flotilla.systemd import JobResult, JournalReader, ManagerClient, UnitStatus

SH = "/bin/sh"
JOB_GUARD_S = 20.0


@pytest.fixture(scope="module")
def unitd(tmp_path_factory: pytest.TempPathFactory):
    daemon = Unitd(tmp_path_factory.mktemp("unitd-review")).start()
    yield daemon
    daemon.stop()


def job(unitd: Unitd, verb: str, name: str) -> JobResult:
    """Run one start/stop/restart job; a job that never finishes fails the test (it is a hang, not a
    slow job: every unit here settles in a few seconds)."""

    async def go() -> JobResult:
        async with ManagerClient(unitd.root) as client:
            return await asyncio.wait_for(getattr(client, f"{verb}_unit")(name), JOB_GUARD_S)

    try:
        return asyncio.run(go())
    except TimeoutError:
        raise AssertionError(f"the {verb} job of {name} never finished") from None


def settled(unitd: Unitd, name: str) -> UnitStatus:
    """The unit's status once it is inactive or failed (its activation is over)."""
    return unitd.wait_for(
        lambda: (s := unitd.status(name)).active_state in ("inactive", "failed") and s,
        f"{name} to be inactive or failed",
    )


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


# ----------------------------------------------------------------------------------- start and its failures


def test_exec_start_post_failure_fails_the_start_and_skips_exec_stop(unitd: Unitd, tmp_path: Path) -> None:
    """systemd.service(5), ExecStop=: the stop commands are not invoked "in case its start-up failed, for
    example because any of the commands specified in ExecStart=, ExecStartPre= or ExecStartPost= failed".
    service.c: a failed START_POST control process enters stop-sigterm with the failure as the result, so
    the start job fails and the main process is killed."""
    marker = tmp_path / "exec-stop-ran"
    name = "rv-post-fails.service"
    unitd.write_unit(
        name,
        f"""
        [Service]
        ExecStart={SH} -c "exec sleep 1000"
        ExecStartPost={SH} -c "exit 1"
        ExecStop={SH} -c "touch {marker}"
        """,
    )
    try:
        result = job(unitd, "start", name)
        assert result.result == "failed"
        status = settled(unitd, name)
        assert (status.active_state, status.result) == ("failed", "exit-code")
        assert not marker.exists()
        assert not unitd.unit_pids(name)
    finally:
        job(unitd, "stop", name)


def test_a_dash_prefix_does_not_forgive_a_start_timeout(unitd: Unitd) -> None:
    """systemd.service(5), ExecStart= prefixes: "-" forgives an exit code or signal that would count as a
    failure; TimeoutStartSec= fails the start whatever the command's prefix (service.c's timer enters
    stop-sigterm with result 'timeout' in start-pre). The main command must never run."""
    name = "rv-pre-times-out.service"
    unitd.write_unit(
        name,
        f"""
        [Service]
        TimeoutStartSec=1
        ExecStartPre=-{SH} -c "exec sleep 1000"
        ExecStart={SH} -c "echo main started; exec sleep 1000"
        """,
    )
    try:
        result = job(unitd, "start", name)
        assert result.result == "failed"
        status = settled(unitd, name)
        assert (status.active_state, status.result) == ("failed", "timeout")
        assert "main started" not in unitd.journal(name)
    finally:
        job(unitd, "stop", name)


def test_a_start_timeout_fails_the_job_with_result_failed(unitd: Unitd) -> None:
    """A start job ends 'done', 'failed', 'canceled', 'timeout' (JobTimeoutSec= only), 'dependency' ...;
    a unit that fails while its start job runs finishes the job as 'failed' (src/core/unit.c), and
    systemctl adds the cause from the unit's Result=: "Job for X failed because a timeout was exceeded."
    NOTE: test_supervisor_services.py::test_notify_service_is_started_only_after_ready asserts 'timeout'
    for the same situation and needs the same change."""
    name = "rv-nr.service"
    unitd.write_unit(
        name, f'[Service]\nType=notify\nTimeoutStartSec=1\nExecStart={SH} -c "exec sleep 1000"\n'
    )
    result = job(unitd, "start", name)
    assert result.result == "failed"
    assert "failed because a timeout was exceeded" in result.message
    assert unitd.status(name).result == "timeout"


def test_stop_during_start_cancels_the_start_job(unitd: Unitd) -> None:
    """A stop job for a unit whose start job runs replaces it; the start job finishes 'canceled' and
    `systemctl start` prints "Job for X canceled." and fails (systemctl(1); src/core/job.c). It must not
    report 'done' for a unit that never became active."""
    name = "rv-stopped-while-starting.service"
    unitd.write_unit(name, f'[Service]\nType=oneshot\nExecStart={SH} -c "exec sleep 1000"\n')

    async def go() -> tuple[JobResult, JobResult]:
        async with ManagerClient(unitd.root) as client:
            start = asyncio.ensure_future(client.start_unit(name))
            for _ in range(400):
                if (await client.unit_status(name)).sub_state == "start":
                    break
                await asyncio.sleep(0.05)
            stop = await asyncio.wait_for(client.stop_unit(name), JOB_GUARD_S)
            return await asyncio.wait_for(start, JOB_GUARD_S), stop

    started, stopped = asyncio.run(go())
    assert stopped.ok
    assert started.result == "canceled"
    assert unitd.status(name).active_state == "inactive"


# ----------------------------------------------------------------------------------- what counts as clean


def test_a_dash_prefixed_exec_start_failure_counts_as_success(unitd: Unitd) -> None:
    """systemd.service(5): with "-", "an exit code of the command normally considered a failure (i.e.
    non-zero exit status or abnormal exit due to signal) is recorded, but has no further effect and is
    considered equivalent to success". That holds for the main process too (service.c applies
    EXEC_COMMAND_IGNORE_FAILURE to the main command's exit): the unit ends inactive, not failed."""
    name = "rv-dash-main.service"
    unitd.write_unit(name, f"[Service]\nExecStart=-{SH} -c 'exit 3'\n")
    assert job(unitd, "start", name).ok
    status = settled(unitd, name)
    assert (status.active_state, status.sub_state, status.result) == ("inactive", "dead", "success")
    assert (status.exec_main_code, status.exec_main_status) == ("exited", 3)  # still recorded


def test_sigterm_is_not_a_clean_end_for_a_oneshot_or_a_control_command(unitd: Unitd, tmp_path: Path) -> None:
    """systemd.service(5), SuccessExitStatus=: exit status 0 "and, except for Type=oneshot, the signals
    SIGHUP, SIGINT, SIGTERM, and SIGPIPE" are clean. service.c uses the same stricter rule (only 0 is
    clean) for control commands such as ExecStartPre=."""
    name = "rv-oneshot-sigterm.service"
    unitd.write_unit(name, f"[Service]\nType=oneshot\nExecStart={SH} -c 'kill -TERM $$$$'\n")
    result = job(unitd, "start", name)
    status = settled(unitd, name)
    assert result.result == "failed"
    assert (status.active_state, status.result) == ("failed", "signal")

    marker = tmp_path / "main-ran"
    name = "rv-pre-sigterm.service"
    unitd.write_unit(
        name,
        f"""
        [Service]
        ExecStartPre={SH} -c 'kill -TERM $$$$'
        ExecStart={SH} -c 'touch {marker}; exec sleep 1000'
        """,
    )
    try:
        result = job(unitd, "start", name)
        status = settled(unitd, name)
        assert result.result == "failed"
        assert (status.active_state, status.result) == ("failed", "signal")
        assert not marker.exists()
    finally:
        job(unitd, "stop", name)


# ----------------------------------------------------------------------------------- stopping


def test_kill_mode_none_kills_nothing_and_does_not_wait(unitd: Unitd) -> None:
    """systemd.kill(5), KillMode=none: "no process is killed. In this case, only the stop command will be
    executed on unit stop, but no process will be killed otherwise. Processes remaining alive after stop
    are left in their control group". So a stop neither waits TimeoutStopSec= for the main process nor
    SIGKILLs it, and the stop is a success."""
    name = "rv-kill-none.service"
    unitd.write_unit(
        name,
        f"""
        [Service]
        KillMode=none
        TimeoutStopSec=2
        ExecStart={SH} -c "exec sleep 1000"
        """,
    )
    assert job(unitd, "start", name).ok
    main = unitd.wait_state(name, "active", "running").main_pid
    try:
        assert job(unitd, "stop", name).ok
        status = unitd.status(name)
        assert (status.active_state, status.result) == ("inactive", "success")
        assert not any("timed out" in line for line in unitd.journal(name))
        assert alive(main)
    finally:
        for pid in unitd.unit_pids(name):
            os.kill(pid, signal.SIGKILL)


# ----------------------------------------------------------------------------------- Type=forking, notify


def test_forking_without_a_known_main_pid_is_running_while_processes_remain(unitd: Unitd) -> None:
    """systemd.service(5), GuessMainPID=: when the main PID cannot be determined "failure detection and
    automatic restarting of a service will not work reliably" -- but the service is still up: service.c's
    service_enter_running() puts it in 'running' while its control group has processes ('exited' is for
    RemainAfterExit= with nothing left)."""
    name = "rv-forking-two.service"
    unitd.write_unit(
        name,
        f"""
        [Service]
        Type=forking
        ExecStart={SH} -c "sleep 1000 & sleep 1000 & exit 0"
        """,
    )
    try:
        assert job(unitd, "start", name).ok
        status = unitd.status(name)
        assert (status.active_state, status.sub_state) == ("active", "running")
    finally:
        job(unitd, "stop", name)


READY_AT_ONCE = """
import os, socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ["NOTIFY_SOCKET"])
s.send(b"READY=1")
time.sleep(1000)
"""


def test_notify_works_for_a_long_unit_name(unitd: Unitd, tmp_path: Path) -> None:
    """systemd.service(5), Type=notify: the service is started once it sends READY=1 to $NOTIFY_SOCKET.
    Unit names may be up to 255 characters (systemd.unit(5)); systemd's notify socket is one path
    (/run/systemd/notify) whatever the unit is called. An AF_UNIX address holds only 107 bytes, so a
    socket named after the unit cannot be bound for a long name -- and that error must not end the start
    job 'done' with the unit silently inactive (systemd fails a unit whose setup fails, Result=resources)."""
    script = tmp_path / "ready.py"
    script.write_text(READY_AT_ONCE)
    name = f"rv-{'n' * 60}.service"
    unitd.write_unit(
        name, f"[Service]\nType=notify\nTimeoutStartSec=20\nExecStart={sys.executable} {script}\n"
    )
    try:
        result = job(unitd, "start", name)
        status = unitd.status(name)
        assert (result.result, status.active_state, status.sub_state) == ("done", "active", "running")
    finally:
        job(unitd, "stop", name)


MAINPID_DURING_START = """
import os, socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ["NOTIFY_SOCKET"])
child = os.fork()
if child == 0:
    time.sleep(1.5)  # the parent hands over and exits first
    s.send(b"READY=1")
    print("child ready", flush=True)
    time.sleep(1000)
    os._exit(0)
s.send(f"MAINPID={child}".encode())
time.sleep(0.5)  # the manager reads MAINPID= before this process ends
os._exit(0)
"""

MAINPID_WHILE_RUNNING = """
import os, socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ["NOTIFY_SOCKET"])
s.send(b"READY=1")
child = os.fork()
if child == 0:
    time.sleep(1000)
    os._exit(0)
s.send(f"MAINPID={child}".encode())
time.sleep(0.5)  # the manager reads MAINPID= before this process ends
print(f"handing over to {child}", flush=True)
os._exit(0)
"""


def test_notify_mainpid_handover_during_start(unitd: Unitd, tmp_path: Path) -> None:
    """sd_notify(3), MAINPID=: "The main process ID (PID) of the service, in case the service manager did
    not fork off the process itself." After it, the old process is no longer the main process: its exit
    is neither a start failure nor a timeout, and READY=1 from the new main process completes the start."""
    script = tmp_path / "handover-start.py"
    script.write_text(MAINPID_DURING_START)
    name = "rv-ho1.service"
    unitd.write_unit(
        name, f"[Service]\nType=notify\nTimeoutStartSec=20\nExecStart={sys.executable} {script}\n"
    )
    try:
        result = job(unitd, "start", name)
        assert result.ok, result
        status = unitd.status(name)
        assert (status.active_state, status.sub_state) == ("active", "running")
        assert status.main_pid and alive(status.main_pid)
    finally:
        job(unitd, "stop", name)


def test_notify_mainpid_handover_while_running(unitd: Unitd, tmp_path: Path) -> None:
    """sd_notify(3), MAINPID= sent after READY=1: the service keeps running under the new main PID when the
    old one exits (only the main process's exit ends a service's 'running' state)."""
    script = tmp_path / "handover-running.py"
    script.write_text(MAINPID_WHILE_RUNNING)
    name = "rv-ho2.service"
    unitd.write_unit(name, f"[Service]\nType=notify\nExecStart={sys.executable} {script}\n")
    try:
        assert job(unitd, "start", name).ok
        line = unitd.wait_journal(name, "handing over to")[0]
        child = int(line.rsplit(" ", 1)[1])
        # The old main PID is the writer of that line (reading MainPID= after the job could race MAINPID=).
        first = next(
            e.pid for e in JournalReader(unitd.layout.journal_dir).entries(units=[name]) if e.message == line
        )
        unitd.wait_for(
            lambda: not alive(first) and not os.path.exists(f"/proc/{first}"), "the old main to end"
        )
        status = unitd.status(name)
        assert (status.active_state, status.sub_state, status.main_pid) == ("active", "running", child)
        assert alive(child)
    finally:
        job(unitd, "stop", name)


# ----------------------------------------------------------------------------------- dependencies


def test_wants_tolerates_a_missing_unit_and_requires_does_not(unitd: Unitd) -> None:
    """systemd.unit(5): Wants= is "a weaker version of Requires=": a missing wanted unit does not fail the
    job; with Requires= on a unit that cannot be loaded the transaction fails and nothing starts."""
    unitd.write_unit(
        "rv-wants-missing.service",
        f"[Unit]\nWants=rv-nowhere.service\n[Service]\nExecStart={SH} -c 'exec sleep 1000'\n",
    )
    unitd.write_unit(
        "rv-requires-missing.service",
        f"[Unit]\nRequires=rv-nowhere.service\n[Service]\nExecStart={SH} -c 'exec sleep 1000'\n",
    )
    try:
        assert job(unitd, "start", "rv-wants-missing.service").ok
        assert job(unitd, "start", "rv-requires-missing.service").result != "done"
        assert unitd.status("rv-requires-missing.service").inactive_exit_us == 0  # never started
    finally:
        job(unitd, "stop", "rv-wants-missing.service")


def test_a_wanted_unit_whose_requirement_is_missing_is_not_started(unitd: Unitd) -> None:
    """systemd.unit(5): a unit whose Requires= cannot be loaded does not start. When it is only pulled in
    by Wants=, systemd drops its job from the transaction ("Cannot add dependency job ..., ignoring") and
    starts the rest; it must not start it and stop it again."""
    unitd.write_unit(
        "rv-root.service",
        f"[Unit]\nWants=rv-leaf.service\n[Service]\nExecStart={SH} -c 'exec sleep 1000'\n",
    )
    unitd.write_unit(
        "rv-leaf.service",
        f"[Unit]\nRequires=rv-gone.service\n[Service]\nExecStart={SH} -c 'echo leaf ran; exec sleep 1000'\n",
    )
    try:
        assert job(unitd, "start", "rv-root.service").ok
        leaf = unitd.status("rv-leaf.service")
        assert leaf.active_state == "inactive"
        assert leaf.inactive_exit_us == 0, "rv-leaf.service was started (and stopped again)"
        assert not any(line.startswith("Starting") for line in unitd.journal("rv-leaf.service"))
    finally:
        job(unitd, "stop", "rv-root.service")
        job(unitd, "stop", "rv-leaf.service")


# ----------------------------------------------------------------------------------- systemctl


def test_systemctl_appends_service_to_a_dotted_name_without_a_unit_suffix(unitd: Unitd) -> None:
    """systemctl(1): a unit name without a valid unit type suffix gets ".service" (systemctl's name
    mangling appends it whenever the part after the last dot is not a unit type), so `systemctl start
    web.v2` starts web.v2.service."""
    unitd.write_unit("rv-web.v2.service", f"[Service]\nExecStart={SH} -c 'exec sleep 1000'\n")
    try:
        started = unitd.ctl("start", "rv-web.v2")
        assert started.returncode == 0, started.stderr
        assert unitd.status("rv-web.v2.service").active_state == "active"
    finally:
        job(unitd, "stop", "rv-web.v2.service")

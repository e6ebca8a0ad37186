"""The embedded unit manager runs services as systemd.service(5) and systemd.kill(5) describe, with real
processes under a real `flotilla systemd` daemon. Each test names its own units, so one daemon serves all."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from supervisor_harness import Unitd

SH = "/bin/sh"


@pytest.fixture(scope="module")
def unitd(tmp_path_factory: pytest.TempPathFactory):
    daemon = Unitd(tmp_path_factory.mktemp("unitd")).start()
    yield daemon
    daemon.stop()


def test_hello_world_loop_runs_logs_and_stops_clean(unitd: Unitd) -> None:
    """The seeds' m.service: a shell loop; its output lands in the journal; stop leaves nothing behind."""
    unitd.write_unit(
        "m.service",
        f"""
        [Unit]
        Description=MyApp
        [Service]
        ExecStart={SH} -c "while true; do echo Hello World; sleep 0.2; done"
        """,
    )
    assert unitd.start_unit("m.service").ok
    status = unitd.wait_state("m.service", "active", "running")
    assert status.main_pid and status.description == "MyApp"
    unitd.wait_journal("m.service", "Hello World")
    assert "Started MyApp." in unitd.journal("m.service")
    assert unitd.unit_pids("m.service")
    assert unitd.stop_unit("m.service").ok
    status = unitd.status("m.service")
    assert (status.active_state, status.sub_state, status.result) == ("inactive", "dead", "success")
    assert not unitd.unit_pids("m.service")


def test_ping_pattern_ignores_failing_pre_commands_and_restarts_always(unitd: Unitd) -> None:
    """ExecStartPre=-... (docker kill/rm of a container that does not exist) may fail; Restart=always
    brings the main process back after RestartSec when it dies."""
    unitd.write_unit(
        "ping.service",
        f"""
        [Service]
        ExecStartPre=-{SH} -c "echo no such container >&2; exit 1"
        ExecStartPre=-/nonexistent/docker rm ping
        ExecStart={SH} -c "while true; do echo ping; sleep 0.2; done"
        Restart=always
        RestartSec=0.5
        """,
    )
    assert unitd.start_unit("ping").ok
    first = unitd.wait_state("ping.service", "active", "running").main_pid
    os.kill(first, signal.SIGKILL)
    unitd.wait_for(lambda: unitd.status("ping.service").n_restarts == 1, "a restart")
    second = unitd.wait_state("ping.service", "active", "running")
    assert second.main_pid != first
    journal = unitd.journal("ping.service")
    assert "ping.service: Main process exited, code=killed, signal=KILL" in journal
    assert "ping.service: Scheduled restart job, restart counter is at 1." in journal
    unitd.stop_unit("ping.service")
    assert unitd.status("ping.service").active_state == "inactive"


def test_requires_and_after_start_the_dependency_first_and_stop_propagates(unitd: Unitd) -> None:
    """redis.service Requires= and After= its data unit: starting redis starts the dependency first; stopping
    the dependency stops redis (Requires propagates stop)."""
    unitd.write_unit(
        "redis-data.service",
        f"""
        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart={SH} -c "sleep 0.3; echo data ready"
        """,
    )
    unitd.write_unit(
        "redis.service",
        f"""
        [Unit]
        Requires=redis-data.service
        After=redis-data.service
        [Service]
        ExecStart={SH} -c "echo redis up; exec sleep 1000"
        """,
    )
    assert unitd.start_unit("redis.service").ok
    data, redis = unitd.status("redis-data.service"), unitd.status("redis.service")
    assert (data.active_state, data.sub_state) == ("active", "exited")
    assert redis.active_state == "active"
    assert data.active_enter_us <= redis.inactive_exit_us  # ordered: redis began after data was up
    unitd.stop_unit("redis-data.service")
    assert unitd.status("redis.service").active_state == "inactive"
    assert not unitd.unit_pids("redis.service")


def test_a_failing_required_dependency_fails_the_job(unitd: Unitd) -> None:
    unitd.write_unit("broken-dep.service", f"[Service]\nType=oneshot\nExecStart={SH} -c 'exit 3'\n")
    unitd.write_unit(
        "needs-broken.service",
        f"""
        [Unit]
        Requires=broken-dep.service
        After=broken-dep.service
        [Service]
        ExecStart={SH} -c "exec sleep 1000"
        """,
    )
    result = unitd.start_unit("needs-broken.service")
    assert result.result == "dependency"
    assert unitd.status("broken-dep.service").active_state == "failed"
    assert unitd.status("needs-broken.service").active_state == "inactive"


def test_on_failure_restarts_a_crash_but_not_a_clean_exit(unitd: Unitd, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    unitd.write_unit(
        "crashy.service",
        f"""
        [Service]
        ExecStart={SH} -c "echo run >> {counter}; [ $(wc -l < {counter}) -ge 3 ] && exec sleep 1000; exit 2"
        Restart=on-failure
        RestartSec=0.2
        """,
    )
    unitd.start_unit("crashy.service")
    unitd.wait_for(lambda: unitd.status("crashy.service").n_restarts >= 2, "two restarts")
    unitd.wait_state("crashy.service", "active", "running")
    assert "crashy.service: Main process exited, code=exited, status=2/INVALIDARGUMENT" in unitd.journal(
        "crashy.service"
    )
    unitd.stop_unit("crashy.service")

    unitd.write_unit("clean-exit.service", f"[Service]\nExecStart={SH} -c 'exit 0'\nRestart=on-failure\n")
    unitd.start_unit("clean-exit.service")
    status = unitd.wait_state("clean-exit.service", "inactive", "dead")
    assert status.n_restarts == 0 and status.result == "success"


def test_oneshot_with_and_without_remain_after_exit(unitd: Unitd, tmp_path: Path) -> None:
    """Type=oneshot: the start job waits for the process to exit; RemainAfterExit keeps it active (exited)."""
    marker = tmp_path / "oneshot-ran"
    unitd.write_unit(
        "once.service", f"[Service]\nType=oneshot\nExecStart={SH} -c 'sleep 0.3; touch {marker}'\n"
    )
    assert unitd.start_unit("once.service").ok
    assert marker.exists()  # the job finished only after ExecStart exited
    assert unitd.status("once.service").active_state == "inactive"

    unitd.write_unit(
        "stays.service",
        f"""
        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart={SH} -c 'echo first'
        ExecStart={SH} -c 'echo second'
        """,
    )
    assert unitd.start_unit("stays.service").ok
    status = unitd.status("stays.service")
    assert (status.active_state, status.sub_state) == ("active", "exited")
    journal = unitd.journal("stays.service")
    assert journal.index("first") < journal.index("second")

    unitd.write_unit("fails-once.service", f"[Service]\nType=oneshot\nExecStart={SH} -c 'exit 7'\n")
    result = unitd.start_unit("fails-once.service")
    assert result.result == "failed" and "control process exited with error code" in result.message
    status = unitd.status("fails-once.service")
    assert (status.active_state, status.result, status.exec_main_status) == ("failed", "exit-code", 7)


def test_forking_service_follows_its_pid_file(unitd: Unitd, tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    unitd.write_unit(
        "forker.service",
        f"""
        [Service]
        Type=forking
        PIDFile={pid_file}
        ExecStart={SH} -c "sleep 1000 & echo $! > {pid_file}"
        """,
    )
    assert unitd.start_unit("forker.service").ok
    status = unitd.wait_state("forker.service", "active", "running")
    assert status.main_pid == int(pid_file.read_text())
    unitd.stop_unit("forker.service")
    assert not unitd.unit_pids("forker.service")
    with pytest.raises(ProcessLookupError):
        os.kill(status.main_pid, 0)


NOTIFY_SCRIPT = """
import os, socket, sys, time
time.sleep(0.5)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ["NOTIFY_SOCKET"])
s.send(b"STATUS=warming up")
time.sleep(0.2)
s.send(b"READY=1\\nSTATUS=serving")
print("notified", flush=True)
time.sleep(1000)
"""


def test_notify_service_is_started_only_after_ready(unitd: Unitd, tmp_path: Path) -> None:
    script = tmp_path / "notify.py"
    script.write_text(NOTIFY_SCRIPT)
    unitd.write_unit("notifier.service", f"[Service]\nType=notify\nExecStart={sys.executable} {script}\n")
    assert unitd.start_unit("notifier.service").ok
    status = unitd.status("notifier.service")  # the job returned: READY=1 must have arrived
    assert (status.active_state, status.sub_state, status.status_text) == ("active", "running", "serving")
    unitd.stop_unit("notifier.service")

    unitd.write_unit(
        "never-ready.service",
        f"""
        [Service]
        Type=notify
        TimeoutStartSec=1
        ExecStart={SH} -c "exec sleep 1000"
        """,
    )
    result = unitd.start_unit("never-ready.service")
    assert result.result == "failed" and "a timeout was exceeded" in result.message
    assert unitd.status("never-ready.service").result == "timeout"
    assert not unitd.unit_pids("never-ready.service")


def test_template_instance_gets_its_instance_name(unitd: Unitd) -> None:
    unitd.write_unit(
        "greet@.service",
        f"""
        [Unit]
        Description=Greeter for %i
        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart={SH} -c "echo instance %i of %p on %H"
        """,
    )
    assert unitd.start_unit("greet@world.service").ok
    status = unitd.status("greet@world.service")
    assert status.description == "Greeter for world"
    assert any(
        line.startswith("instance world of greet on ") for line in unitd.journal("greet@world.service")
    )


def test_stop_kills_forked_children_and_daemonized_grandchildren(unitd: Unitd) -> None:
    """KillMode=control-group (the default): nothing the unit started survives a stop, not even a process
    that called setsid and double-forked away from the main process's group."""
    unitd.write_unit(
        "spawner.service",
        f"""
        [Service]
        ExecStart={SH} -c "sleep 1000 & setsid sh -c 'sleep 1000 & exit' & exec sleep 1000"
        """,
    )
    unitd.start_unit("spawner.service")
    unitd.wait_for(lambda: len(unitd.unit_pids("spawner.service")) >= 3, "three processes")
    unitd.stop_unit("spawner.service")
    assert not unitd.unit_pids("spawner.service")


def test_kill_mode_process_leaves_children_and_stop_timeout_escalates(unitd: Unitd, tmp_path: Path) -> None:
    unitd.write_unit(
        "stubborn.service",
        f"""
        [Service]
        ExecStart={SH} -c "trap '' TERM; echo deaf to TERM; while true; do sleep 0.1; done"
        TimeoutStopSec=1
        """,
    )
    unitd.start_unit("stubborn.service")
    unitd.wait_journal("stubborn.service", "deaf to TERM")  # the trap is set
    unitd.stop_unit("stubborn.service")
    status = unitd.status("stubborn.service")
    assert (status.active_state, status.result) == ("failed", "timeout")
    assert "stubborn.service: State 'stop-sigterm' timed out. Killing." in unitd.journal("stubborn.service")
    assert not unitd.unit_pids("stubborn.service")


def test_exec_stop_post_sees_the_result(unitd: Unitd, tmp_path: Path) -> None:
    report = tmp_path / "post.txt"
    unitd.write_unit(
        "reporter.service",
        f"""
        [Service]
        ExecStart={SH} -c "exit 4"
        ExecStopPost={SH} -c 'echo "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS" > {report}'
        """,
    )
    unitd.start_unit("reporter.service")
    unitd.wait_state("reporter.service", "failed")
    assert report.read_text().split() == ["exit-code", "exited", "4"]


def test_environment_files_working_directory_and_user(unitd: Unitd) -> None:
    tmp_path = Path(tempfile.mkdtemp(prefix="flotilla-user-"))  # pytest's tmp_path is not reachable by nobody
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=file value\nSHARED=from file\n")
    out = tmp_path / "env.txt"
    os.chmod(tmp_path, 0o777)
    unitd.write_unit(
        "envy.service",
        f"""
        [Service]
        Type=oneshot
        Environment="GREETING=hello world" SHARED=from-unit
        EnvironmentFile={env_file}
        EnvironmentFile=-/nonexistent/optional
        WorkingDirectory={tmp_path}
        User=nobody
        ExecStart={SH} -c 'echo "$GREETING|$FROM_FILE|$SHARED|$(pwd)|$(id -un)|$USER" > {out}'
        ExecStart=/bin/echo ${{GREETING}} $GREETING
        """,
    )
    assert unitd.start_unit("envy.service").ok
    assert out.read_text().strip() == f"hello world|file value|from file|{tmp_path}|nobody|nobody"
    assert "hello world hello world" in unitd.journal("envy.service")
    shutil.rmtree(tmp_path)

    unitd.write_unit(
        "no-env-file.service", f"[Service]\nEnvironmentFile=/nonexistent/env\nExecStart={SH} -c true\n"
    )
    assert unitd.start_unit("no-env-file.service").result == "failed"
    assert unitd.status("no-env-file.service").result == "resources"


def test_start_rate_limit_stops_a_crash_loop(unitd: Unitd) -> None:
    unitd.write_unit(
        "looper.service",
        f"""
        [Unit]
        StartLimitIntervalSec=60
        StartLimitBurst=3
        [Service]
        ExecStart={SH} -c "exit 1"
        Restart=always
        RestartSec=0.05
        """,
    )
    unitd.start_unit("looper.service")
    status = unitd.wait_state("looper.service", "failed")
    assert status.result == "start-limit-hit"
    assert "looper.service: Start request repeated too quickly." in unitd.journal("looper.service")


def test_binds_to_stops_the_bound_unit_when_its_peer_dies(unitd: Unitd) -> None:
    unitd.write_unit("peer.service", f"[Service]\nExecStart={SH} -c 'exec sleep 1000'\n")
    unitd.write_unit(
        "bound.service",
        f"""
        [Unit]
        BindsTo=peer.service
        After=peer.service
        [Service]
        ExecStart={SH} -c 'exec sleep 1000'
        """,
    )
    unitd.start_unit("bound.service")
    peer = unitd.wait_state("peer.service", "active")
    os.kill(peer.main_pid, signal.SIGKILL)
    unitd.wait_state("bound.service", "inactive")


def test_argv0_prefix_and_exec_failure(unitd: Unitd) -> None:
    unitd.write_unit("argv0.service", f"[Service]\nType=oneshot\nExecStart=@{SH} custom-name -c 'echo $0'\n")
    assert unitd.start_unit("argv0.service").ok
    assert "custom-name" in unitd.journal("argv0.service")

    unitd.write_unit("missing.service", "[Service]\nExecStart=/nonexistent/program\n")
    assert unitd.start_unit("missing.service").result == "failed"
    status = unitd.status("missing.service")
    assert (status.active_state, status.exec_main_status) == ("failed", 203)


def test_kill_mode_process_and_none_leave_the_rest_running(unitd: Unitd) -> None:
    """KillMode=process stops only the main process; KillMode=none kills nothing (fleet users running
    docker set it). What is left stays the unit's until it dies or the unit starts again."""
    unitd.write_unit(
        "keeper.service",
        f"""
        [Service]
        KillMode=process
        ExecStart={SH} -c "sleep 1000 & echo child started; exec sleep 1000"
        """,
    )
    unitd.start_unit("keeper.service")
    unitd.wait_journal("keeper.service", "child started")
    unitd.wait_for(lambda: len(unitd.unit_pids("keeper.service")) == 2, "main and child")
    main = unitd.status("keeper.service").main_pid
    unitd.stop_unit("keeper.service")
    left = unitd.unit_pids("keeper.service")
    assert len(left) == 1 and main not in left
    for pid in left:
        os.kill(pid, signal.SIGKILL)

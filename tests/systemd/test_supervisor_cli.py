"""`flotilla systemctl` and `flotilla journalctl` against a running manager: systemctl's output shapes and
exit codes (0 ok, 1 failure, 3 not active, 4 no such unit for status, 5 not found for start/stop)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from supervisor_harness import Unitd

SH = "/bin/sh"


@pytest.fixture(scope="module")
def unitd(tmp_path_factory: pytest.TempPathFactory):
    daemon = Unitd(tmp_path_factory.mktemp("unitd-cli")).start()
    daemon.write_unit(
        "web.service",
        f"""
        [Unit]
        Description=Web server
        [Service]
        ExecStart={SH} -c "echo listening; exec sleep 1000"
        [Install]
        WantedBy=multi-user.target
        """,
    )
    daemon.write_unit("web.service.d/override.conf", "[Service]\nEnvironment=PORT=8080\n")
    daemon.write_unit("bad.service", "[Service]\nType=sideways\nExecStart=/bin/true\n")
    yield daemon
    daemon.stop()


def test_start_status_list_and_stop(unitd: Unitd) -> None:
    started = unitd.ctl("start", "web")
    assert started.returncode == 0, started.stderr
    status = unitd.ctl("status", "web.service")
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[0] == "● web.service - Web server"
    assert f"Loaded: loaded ({unitd.layout.etc_units}/web.service; disabled)" in lines[1]
    assert any(line.strip().startswith("Active: active (running) since ") for line in lines)
    assert any(line.strip().startswith("Main PID: ") and line.endswith("(sleep)") for line in lines)
    assert any("listening" in line for line in lines)  # the journal tail
    assert any("override.conf" in line for line in lines)

    listed = unitd.ctl("list-units", "--no-legend")
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if "web.service" in line)
    assert row.split() == ["web.service", "loaded", "active", "running", "Web", "server"]
    full = unitd.ctl("list-units").stdout
    assert full.splitlines()[0].split() == ["UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION"]
    assert "loaded units listed." in full

    assert unitd.ctl("is-active", "web").stdout.strip() == "active"
    assert unitd.ctl("show", "web", "-p", "ActiveState,SubState").stdout.split() == [
        "ActiveState=active",
        "SubState=running",
    ]
    assert unitd.ctl("stop", "web").returncode == 0
    inactive = unitd.ctl("status", "web")
    assert inactive.returncode == 3
    assert "Active: inactive (dead) since " in inactive.stdout
    assert unitd.ctl("is-active", "web").returncode == 3


def test_unknown_and_bad_units(unitd: Unitd) -> None:
    missing = unitd.ctl("start", "nope.service")
    assert missing.returncode == 5
    assert missing.stderr.strip() == "Failed to start nope.service: Unit nope.service not found."
    status = unitd.ctl("status", "nope.service")
    assert status.returncode == 4
    assert status.stderr.strip() == "Unit nope.service could not be found."
    bad = unitd.ctl("start", "bad.service")
    assert bad.returncode == 5
    assert "bad unit file setting" in bad.stderr and "bad.service:2" in bad.stderr  # file:line of Type=
    assert "Loaded: bad-setting" in unitd.ctl("status", "bad.service").stdout
    assert unitd.ctl("cat", "nope").returncode == 1


def test_failed_start_reports_like_systemctl(unitd: Unitd) -> None:
    unitd.write_unit("boom.service", f"[Service]\nType=oneshot\nExecStart={SH} -c 'echo boom >&2; exit 9'\n")
    failed = unitd.ctl("start", "boom")
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        "Job for boom.service failed because the control process exited with error code."
    )
    status = unitd.ctl("status", "boom")
    assert status.returncode == 3
    assert "Active: failed (Result: exit-code) since " in status.stdout
    assert "boom" in status.stdout
    assert unitd.ctl("is-failed", "boom").returncode == 0
    assert unitd.ctl("reset-failed", "boom").returncode == 0
    assert unitd.ctl("is-failed", "boom").returncode == 1


def test_cat_enable_disable_and_daemon_reload(unitd: Unitd) -> None:
    cat = unitd.ctl("cat", "web")
    assert cat.returncode == 0
    assert cat.stdout.startswith(f"# {unitd.layout.etc_units}/web.service\n[Unit]\nDescription=Web server\n")
    assert (
        f"# {unitd.layout.etc_units}/web.service.d/override.conf\n[Service]\nEnvironment=PORT=8080\n"
        in cat.stdout
    )

    enabled = unitd.ctl("enable", "web")
    assert enabled.returncode == 0
    assert "Created symlink" in enabled.stderr and "multi-user.target.wants/web.service" in enabled.stderr
    assert "; enabled)" in unitd.ctl("status", "web").stdout
    files = unitd.ctl("list-unit-files", "--no-legend").stdout
    assert any(line.split() == ["web.service", "enabled"] for line in files.splitlines())
    assert unitd.ctl("disable", "web").returncode == 0
    assert "; disabled)" in unitd.ctl("status", "web").stdout

    unitd.write_unit(
        "web.service", "[Unit]\nDescription=Web server v2\n[Service]\nExecStart=/bin/sleep 1000\n"
    )
    assert unitd.ctl("daemon-reload").returncode == 0
    assert unitd.ctl("status", "web").stdout.splitlines()[0] == "● web.service - Web server v2"


def test_journalctl_reads_a_units_output(unitd: Unitd) -> None:
    unitd.write_unit("talker.service", f"[Service]\nType=oneshot\nExecStart={SH} -c 'echo one; echo two'\n")
    assert unitd.ctl("start", "talker").returncode == 0
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "flotilla",
            "journalctl",
            "--root",
            str(unitd.root),
            "-u",
            "talker",
            "-o",
            "json",
            "--no-pager",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    messages = [r["MESSAGE"] for r in records if r.get("_TRANSPORT") == "stdout"]
    assert messages == ["one", "two"]
    assert all(r.get("_SYSTEMD_UNIT", r.get("UNIT")) == "talker.service" for r in records)
    assert any(r["MESSAGE"].startswith("Starting ") and r["SYSLOG_IDENTIFIER"] == "systemd" for r in records)


def test_without_cgroups_a_stop_still_leaves_nothing(tmp_path) -> None:
    """Where cgroup v2 is not writable the manager finds a unit's processes by their environment tag."""
    daemon = Unitd(tmp_path, cgroups=False).start()
    try:
        daemon.write_unit(
            "escapee.service",
            f"""
            [Service]
            ExecStart={SH} -c "setsid sh -c 'sleep 1000 & exit' & sleep 1000 & exec sleep 1000"
            """,
        )
        assert daemon.ctl("start", "escapee").returncode == 0
        daemon.wait_for(lambda: len(daemon.unit_pids("escapee.service")) >= 3, "three processes")
        assert daemon.ctl("stop", "escapee").returncode == 0
        assert not daemon.unit_pids("escapee.service")
    finally:
        daemon.stop()


def test_enabled_units_start_with_the_manager(tmp_path) -> None:
    daemon = Unitd(tmp_path)
    daemon.write_unit(
        "boot.service",
        f"""
        [Service]
        ExecStart={SH} -c "echo booted; exec sleep 1000"
        [Install]
        WantedBy=multi-user.target
        """,
    )
    wants = daemon.layout.etc_units / "multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "boot.service").symlink_to(daemon.layout.etc_units / "boot.service")
    daemon.start()
    try:
        daemon.wait_state("boot.service", "active", "running")
        daemon.wait_journal("boot.service", "booted")
    finally:
        daemon.stop()
    assert not daemon.unit_pids("boot.service")

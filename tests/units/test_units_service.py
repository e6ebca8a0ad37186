"""The typed [Unit]/[Service]/[Install] view (systemd.service(5), systemd.unit(5), src/core/service.c)."""

import signal

import pytest

from flotilla.units import (
    ExitStatusSet,
    SpecifierContext,
    UnitFileError,
    parse_signal,
    parse_unit_text,
    service_config,
)

# The seeds' ping-pro pattern: ExecStartPre=- kill/rm, Restart=always, a docker run.
PING_PRO = """\
[Unit]
Description=Ping %i on %H
After=docker.service
Requires=docker.service

[Service]
TimeoutStartSec=0
ExecStartPre=-/usr/bin/docker kill ping-%i
ExecStartPre=-/usr/bin/docker rm ping-%i
ExecStart=/usr/bin/docker run --name ping-%i busybox /bin/sh -c "while true; do echo pong; sleep 1; done"
ExecStop=/usr/bin/docker stop ping-%i
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target

[X-Fleet]
Conflicts=ping@*.service
"""


def _config(text: str, name: str = "a.service", **ctx: object):
    specifiers = SpecifierContext(name, **ctx) if ctx else None
    return service_config(parse_unit_text(text, f"/units/{name}"), name, specifiers)


def test_ping_pro_seed() -> None:
    config = _config(PING_PRO, "ping@1.service", hostname="core-01")
    assert config.description == "Ping 1 on core-01"
    assert config.type == "simple"
    assert [c.words[:3] for c in config.exec_start_pre] == [
        ("/usr/bin/docker", "kill", "ping-1"),
        ("/usr/bin/docker", "rm", "ping-1"),
    ]
    assert all(c.ignore_failure for c in config.exec_start_pre)
    assert config.exec_start[0].words[-1] == "while true; do echo pong; sleep 1; done"
    assert config.restart == "always" and config.restart_sec_s == 5.0
    assert config.timeout_start_s is None  # TimeoutStartSec=0 disables the timeout
    assert config.timeout_stop_s == 90.0
    assert config.requires == ("docker.service",) and config.after == ("docker.service",)
    assert config.wanted_by == ("multi-user.target",)
    assert config.warnings == ()  # [X-Fleet] is fleet's, not a warning


def test_defaults_as_systemd() -> None:
    config = _config("[Service]\nExecStart=/bin/true\n")
    assert (config.type, config.restart, config.restart_sec_s) == ("simple", "no", 0.1)
    assert (config.timeout_start_s, config.timeout_stop_s) == (90.0, 90.0)
    assert (config.kill_mode, config.kill_signal, config.send_sigkill) == (
        "control-group",
        signal.SIGTERM,
        True,
    )
    assert (config.start_limit_interval_s, config.start_limit_burst) == (10.0, 5)
    assert (config.standard_output, config.standard_error, config.notify_access) == (
        "journal",
        "inherit",
        "none",
    )
    assert config.description == "" and config.remain_after_exit is False


@pytest.mark.parametrize(
    ("service", "field", "value"),
    [
        # oneshot is implied without ExecStart=; a oneshot's start timeout is off by default.
        ("Type=oneshot\nExecStart=/bin/a\nExecStart=/bin/b", "timeout_start_s", None),
        ("ExecStop=/bin/a\nRemainAfterExit=yes", "type", "oneshot"),
        ("Type=exec\nExecStart=/bin/a", "type", "simple"),
        ("Type=idle\nExecStart=/bin/a", "type", "simple"),
        ("Type=notify\nExecStart=/bin/a", "notify_access", "main"),
        ("Type=notify\nNotifyAccess=all\nExecStart=/bin/a", "notify_access", "all"),
        ("Type=forking\nPIDFile=/run/a.pid\nExecStart=/bin/a", "pid_file", "/run/a.pid"),
        ("Type=forking\nPIDFile=a.pid\nExecStart=/bin/a", "pid_file", "/run/a.pid"),  # relative to /run
        ("ExecStart=/bin/a\nTimeoutSec=5", "timeout_stop_s", 5.0),  # TimeoutSec sets both
        ("ExecStart=/bin/a\nTimeoutStopSec=infinity", "timeout_stop_s", None),
        ("ExecStart=/bin/a\nTimeoutStartSec=1min", "timeout_start_s", 60.0),
        ("ExecStart=/bin/a\nRestartSec=250ms", "restart_sec_s", 0.25),
        ("ExecStart=/bin/a\nRestart=on-failure\nRestart=on-abnormal", "restart", "on-abnormal"),
        ("ExecStart=/bin/a\nKillSignal=INT", "kill_signal", signal.SIGINT),
        ("ExecStart=/bin/a\nKillSignal=9", "kill_signal", 9),
        ("ExecStart=/bin/a\nKillMode=process", "kill_mode", "process"),
        ("ExecStart=/bin/a\nSendSIGKILL=no", "send_sigkill", False),
        ("ExecStart=/bin/a\nRemainAfterExit=TRUE", "remain_after_exit", True),
        (
            "ExecStart=/bin/a\nSuccessExitStatus=1 2 SIGUSR1\nSuccessExitStatus=3",
            "success_exit_status",
            {1, 2, 3},
        ),
        ("ExecStart=/bin/a\nSuccessExitStatus=1\nSuccessExitStatus=", "success_exit_status", set()),
        (
            "ExecStart=/bin/a\nSuccessExitStatus=SIGUSR1 TERM",
            "success_signals",
            {signal.SIGUSR1, signal.SIGTERM},
        ),
        (
            "ExecStart=/bin/a\nRestartPreventExitStatus=1 SIGABRT",
            "restart_prevent_exit_status",
            ExitStatusSet(frozenset({1}), frozenset({signal.SIGABRT})),
        ),
        (
            "ExecStart=/bin/a\nRestartForceExitStatus=42",
            "restart_force_exit_status",
            ExitStatusSet(frozenset({42})),
        ),
        ("ExecStart=/bin/a\nStartLimitInterval=1min\nStartLimitBurst=3", "start_limit_interval_s", 60.0),
        ("ExecStart=/bin/a\nStartLimitBurst=3", "start_limit_burst", 3),
        (
            "ExecStart=/bin/a\nEnvironment=A=1 B=2\nEnvironment=\nEnvironment=C=3",
            "environment",
            (("C", "3"),),
        ),
        ("ExecStart=/bin/a\nEnvironment=A=1\nEnvironment=A=2", "environment", (("A", "1"), ("A", "2"))),
        (
            "ExecStart=/bin/a\nEnvironmentFile=-/etc/a.env\nEnvironmentFile=/etc/b.env",
            "environment_files",
            (("/etc/a.env", True), ("/etc/b.env", False)),
        ),
        ("ExecStart=/bin/a\nWorkingDirectory=-/srv/%p", "working_directory", "/srv/a"),
        ("ExecStart=/bin/a\nWorkingDirectory=-/srv", "working_directory_missing_ok", True),
        ("ExecStart=/bin/a\nWorkingDirectory=~", "working_directory", "~"),
        ("ExecStart=/bin/a\nUser=core\nGroup=core\nUser=", "user", None),
        ("ExecStart=/bin/a\nGroup=core", "group", "core"),
        ("ExecStart=/bin/a\nSyslogIdentifier=%p-log", "syslog_identifier", "a-log"),
        ("ExecStart=/bin/a\nStandardOutput=null\nStandardError=file:/tmp/x", "standard_error", "file:/tmp/x"),
        ("ExecStart=/bin/a\nExecStart=\nExecStart=/bin/b", "exec_start", "/bin/b"),
    ],
)
def test_service_options(service: str, field: str, value: object) -> None:
    config = _config(f"[Service]\n{service}\n")
    got = getattr(config, field)
    if field == "exec_start":
        got = got[0].program
    assert got == value


def test_dependencies_accumulate_split_and_expand() -> None:
    text = (
        "[Unit]\nRequires=a.service b.service\nRequires=c.service\nRequires=\nWants=x@%i.service\n"
        "After=a.service\nAfter=a.service\nBefore=z.target\nBindsTo=b.service\nConflicts=d.service\n"
        "Requisite=e.service\nPartOf=f.service\n[Service]\nExecStart=/bin/a\n[Install]\nRequiredBy=g.target\n"
    )
    config = _config(text, "w@1.service")
    # systemd cannot reset dependencies with an empty assignment: they only accumulate.
    assert config.requires == ("a.service", "b.service", "c.service")
    assert config.wants == ("x@1.service",)
    assert config.after == ("a.service",)
    assert (config.before, config.binds_to, config.conflicts) == (
        ("z.target",),
        ("b.service",),
        ("d.service",),
    )
    assert (config.requisite, config.part_of, config.required_by) == (
        ("e.service",),
        ("f.service",),
        ("g.target",),
    )


def test_invalid_dependency_names_are_warnings() -> None:
    config = _config("[Unit]\nWants=ok.service bad name.nope\n[Service]\nExecStart=/bin/a\n")
    assert config.wants == ("ok.service",)
    assert len(config.warnings) == 2 and all(w.startswith("/units/a.service:2: ") for w in config.warnings)


def test_unknown_options_and_sections_are_warnings() -> None:
    text = (
        "[Unit]\nDocumentation=man:x\nFoo=1\nX-Custom=1\n[Service]\nExecStart=/bin/a\nNice=5\n[Weird]\nA=1\n"
    )
    warnings = _config(text).warnings
    assert [w.split(":")[1] for w in warnings] == ["3", "7", "9"]
    assert "Foo=" in warnings[0] and "Nice=" in warnings[1] and "[Weird]" in warnings[2]


@pytest.mark.parametrize(
    ("service", "line", "fragment"),
    [
        (
            "Type=dbus\nExecStart=/bin/a",
            2,
            "Type= takes one of: simple, exec, idle, forking, oneshot, notify",
        ),
        ("ExecStart=/bin/a\nRestart=sometimes", 3, "Restart= takes one of: no, on-success"),
        ("ExecStart=/bin/a\nKillMode=all", 3, "KillMode= takes one of"),
        ("ExecStart=/bin/a\nKillSignal=SIGNOPE", 3, "is not a signal"),
        ("ExecStart=/bin/a\nRemainAfterExit=maybe", 3, "not a boolean"),
        ("ExecStart=/bin/a\nRestartSec=soon", 3, "invalid time span"),
        ("ExecStart=/bin/a\nSuccessExitStatus=256", 3, "out of range"),
        ("ExecStart=/bin/a\nStartLimitBurst=-1", 3, "whole number"),
        ("ExecStart=/bin/a\nEnvironmentFile=relative.env", 3, "not an absolute path"),
        ("ExecStart=/bin/a\nWorkingDirectory=srv", 3, "not an absolute path"),
        ("ExecStart=/bin/a\nStandardOutput=printer", 3, "StandardOutput= takes one of"),
        ("ExecStart=/bin/a\nNotifyAccess=some", 3, "NotifyAccess= takes one of"),
        ('ExecStart=/bin/a "open', 2, "unterminated"),
        ("ExecStart=/bin/%p", 2, "may not contain specifiers"),
        ("ExecStart=/bin/a %z", 2, "unknown specifier %z"),
        # service_verify(): systemd's own messages.
        ("Restart=always", None, "Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing."),
        (
            "Type=simple\nExecStop=/bin/a",
            None,
            "Service has no ExecStart= setting, which is only allowed for",
        ),
        ("Type=oneshot\nExecStop=/bin/a", None, "does not have RemainAfterExit=yes set. Refusing."),
        ("ExecStart=/bin/a\nExecStart=/bin/b", 3, "more than one ExecStart= setting"),
        ("ExecStart=/bin/a ; /bin/b", 2, "more than one ExecStart= setting"),
        ("Type=oneshot\nRestart=always\nExecStart=/bin/a", None, "isn't allowed for Type=oneshot"),
    ],
)
def test_refusals_name_file_line_option_and_allowed_values(
    service: str, line: int | None, fragment: str
) -> None:
    with pytest.raises(UnitFileError) as info:
        _config(f"[Service]\n{service}\n")
    assert info.value.path == "/units/a.service"
    assert info.value.line == line
    assert fragment in info.value.message


def test_targets_and_other_units_load_without_exec() -> None:
    config = _config("[Unit]\nDescription=Multi\nWants=a.service\nAfter=a.service\n", "multi.target")
    assert (config.description, config.wants, config.unit_type) == ("Multi", ("a.service",), "target")
    assert config.exec_start == () and not config.is_service
    # A [Service] section in a target is unknown to systemd, so only a warning.
    assert "[Service]" in _config("[Service]\nExecStart=/bin/a\n", "x.target").warnings[0]


def test_dropins_apply_after_the_unit() -> None:
    base = parse_unit_text("[Service]\nExecStart=/bin/a\nRestart=no\n", "a.service")
    dropin = parse_unit_text(
        "[Service]\nExecStart=\nExecStart=/bin/b\nRestart=on-failure\n", "a.service.d/o.conf"
    )
    config = service_config(base.with_dropins(dropin), "a.service")
    assert config.exec_start[0].program == "/bin/b" and config.restart == "on-failure"


@pytest.mark.parametrize(
    ("text", "number"),
    [("SIGTERM", 15), ("TERM", 15), ("15", 15), ("SIGKILL", 9), ("SIGRTMIN+1", signal.SIGRTMIN + 1)],
)
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["0", "999", "SIGNOPE", "", "SIGRTMIN+x", "SIGRTMIN+99"])
def test_parse_signal_rejects(text: str) -> None:
    assert parse_signal(text) is None

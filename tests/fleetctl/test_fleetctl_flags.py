"""fleetctl's command line as Go and cobra read it, FLEETCTL_* variables, driver choice and exit codes
of what needs no store."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from flotilla.fleetctl import run
from flotilla.fleetctl.context import choose_driver
from flotilla.fleetctl.flags import UsageError, parse_command_line
from flotilla.fleetctl.main import COMMANDS

FLAGS = {name: c.flags for name, c in COMMANDS.items()}


def parse(*argv: str, env: dict[str, str] | None = None):
    return parse_command_line(list(argv), env or {}, FLAGS, stop_after_first_arg=("ssh",))


def fleetctl(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), env=env or {}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "argv",
    [["--endpoint=http://h:1", "list-units"], ["--endpoint", "http://h:1", "list-units"],
     ["-endpoint", "http://h:1", "list-units"], ["-endpoint=http://h:1", "list-units"],
     ["list-units", "--endpoint=http://h:1"]],
)  # fmt: skip
def test_global_flags_in_every_go_spelling_and_on_either_side_of_the_command(argv):
    inv = parse(*argv)
    assert inv.command == "list-units" and inv.global_flags["endpoint"] == "http://h:1"
    assert "endpoint" in inv.explicit


def test_defaults_are_fleets():
    inv = parse("list-unit-files")
    assert inv.global_flags["endpoint"] == "unix:///var/run/fleet.sock"
    assert inv.global_flags["etcd-key-prefix"] == "/_coreos.com/fleet/"
    assert inv.global_flags["request-timeout"] == 3.0 and inv.global_flags["driver"] == "API"
    assert inv.flags == {"full": False, "no-legend": False, "fields": "unit,hash,dstate,state,target"}


def test_command_flags_bools_shorthands_and_values():
    inv = parse("list-units", "-l", "--no-legend", "--fields", "unit,hash")
    assert inv.flags == {"full": True, "no-legend": True, "fields": "unit,hash"}
    assert parse("list-units", "--full=false").flags["full"] is False
    inv = parse("start", "--block-attempts=3", "-no-block", "--replace", "a.service", "b")
    assert inv.flags == {"block-attempts": 3, "no-block": True, "replace": True, "sign": False}
    assert inv.args == ["a.service", "b"]
    inv = parse("journal", "-f", "--lines", "5", "x")
    assert (inv.flags["follow"], inv.flags["lines"], inv.args) == (True, 5, ["x"])


def test_a_unique_prefix_names_a_command_as_cobra_matches_it():
    assert parse("list-m").command == "list-machines"
    with pytest.raises(UsageError, match="unknown command"):
        parse("list")  # list-machines, list-units and list-unit-files


def test_ssh_takes_the_rest_of_the_line_as_the_remote_command():
    inv = parse("ssh", "--unit", "a", "ls", "-la", "/tmp")
    assert (inv.flags["unit"], inv.args) == ("a", ["ls", "-la", "/tmp"])
    assert parse("ssh", "m1", "ls", "-la").args == ["m1", "ls", "-la"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["list-units", "--bogus"], "unknown flag: --bogus"),
     (["start", "--block-attempts=x", "a"], "expected an integer"),
     (["list-units", "--full=maybe"], 'invalid argument "maybe"'),
     (["list-units", "--fields"], "flag needs an argument"),
     (["frobnicate"], "unknown command"), (["--request-timeout=soon", "list-units"], "expected a number")],
)  # fmt: skip
def test_usage_errors_exit_2_and_say_what_was_wrong(argv, message):
    code, out, err = fleetctl(*argv)
    assert code == 2 and message in err and "fleetctl help" in err and out == ""


def test_fleetctl_variables_fill_global_flags_the_command_line_leaves_unset():
    env = {"FLEETCTL_ENDPOINT": "http://e:1", "FLEETCTL_ETCD_KEY_PREFIX": "/p/", "FLEETCTL_DEBUG": "true",
           "FLEETCTL_REQUEST_TIMEOUT": "7.5", "FLEETCTL_DRIVER": "etcd"}  # fmt: skip
    inv = parse("list-units", env=env)
    assert inv.global_flags["endpoint"] == "http://e:1" and inv.global_flags["etcd-key-prefix"] == "/p/"
    assert inv.global_flags["debug"] is True and inv.global_flags["request-timeout"] == 7.5
    assert {"endpoint", "driver"} <= inv.explicit
    assert (
        parse("--endpoint=http://flag:1", "list-units", env=env).global_flags["endpoint"] == "http://flag:1"
    )
    with pytest.raises(UsageError, match="FLEETCTL_DEBUG"):
        parse("list-units", env={"FLEETCTL_DEBUG": "sometimes"})


@pytest.mark.parametrize(
    ("argv", "driver"),
    [([], "api"), (["--endpoint=http://10.0.0.1:2379"], "etcd"),
     (["--endpoint=http://10.0.0.1:4001,http://x:1"], "etcd"),
     (["--endpoint=http://10.0.0.1:2379", "--driver=API"], "api"), (["--driver=etcd"], "etcd"),
     (["--endpoint=http://10.0.0.1:12379"], "api"), (["--driver=ETCD"], "etcd")],
)  # fmt: skip
def test_driver_is_etcd_when_asked_or_when_the_endpoint_is_on_etcds_port(argv, driver):
    inv = parse(*argv, "list-units")
    assert choose_driver(inv.global_flags, inv.explicit) == driver


def test_an_unknown_driver_cannot_initialize_the_client():
    code, _, err = fleetctl("--driver=zookeeper", "list-units")
    assert code == 1 and err.startswith('Unable to initialize client: unrecognized driver "zookeeper"')


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [("unix://var/run/fleet.sock", 'unable to connect to host "var" with scheme "unix"'),
     ("/var/run/fleet.sock", "URL scheme undefined")],
)  # fmt: skip
def test_api_endpoints_fleet_refuses(endpoint, message):
    code, _, err = fleetctl(f"--endpoint={endpoint}", "list-units")
    assert code == 1 and err == f"Unable to initialize client: {message}\n"


def test_unreachable_api_socket_is_fleets_list_machines_error(tmp_path):
    code, out, err = fleetctl(f"--endpoint=unix://{tmp_path}/none.sock", "list-machines")
    assert code == 1 and out == ""
    assert err.startswith("Error retrieving list of active machines from fleet API (")
    assert "Possible issues:\n  etcd is unhealthy and/or lost quorum\n" in err


def test_version_help_and_verify():
    assert fleetctl("version")[:2] == (0, "fleetctl version 0.1.0\n")
    assert fleetctl("--version")[:2] == (0, "fleetctl version 0.1.0\n")
    code, out, _ = fleetctl()
    assert code == 0 and out.startswith("NAME:\n\tfleetctl - fleetctl is a command-line interface to fleet")
    assert "\tlist-unit-files\tList the units that exist in the cluster.\n" in out
    code, out, _ = fleetctl("help", "start")
    assert code == 0 and "\tfleetctl start [--no-block|--block-attempts=N] UNIT...\n" in out
    assert "--block-attempts=0" in out and "GLOBAL OPTIONS:" in out
    assert "no SSH" in fleetctl("ssh", "--help")[1]
    assert fleetctl("verify", "a.service") == (
        2, "", "WARNING: The signed/verified units feature is DEPRECATED and cannot be used.\n"
    )  # fmt: skip
    assert fleetctl("submit", "--sign", "a.service")[0] == 2


def test_no_units_given_is_not_an_error_as_in_fleetctl():
    for command in ("submit", "start", "stop", "destroy"):
        code, out, err = fleetctl("--driver=etcd", "--endpoint=http://127.0.0.1:1", command)
        assert (code, out, err) == (0, "", "No units given\n")


def test_python_m_flotilla_fleetctl_runs_the_console_script():
    done = subprocess.run(
        [sys.executable, "-m", "flotilla.fleetctl", "version"], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "fleetctl version 0.1.0\n")

"""`flotilla etcd`: every argument reaches etcd's flag parser; exit 0 for help/version, 2 for bad flags,
else the member's exit code."""

import subprocess
import sys
import types

import pytest
from click.testing import CliRunner

from flotilla.cli.main import flotilla
from flotilla.etcd.config import EtcdConfig


@pytest.fixture
def fake_member(monkeypatch, tmp_path):
    """Stands in for flotilla.etcd.member (imported lazily by the command): records the configuration
    it was given and exits 0, or 3 for a member named "fails"."""
    monkeypatch.chdir(tmp_path)
    configs: list[EtcdConfig] = []
    module = types.ModuleType("flotilla.etcd.member")

    def run_member(config: EtcdConfig) -> int:
        configs.append(config)
        return 3 if config.name == "fails" else 0

    module.run_member = run_member
    monkeypatch.setitem(sys.modules, "flotilla.etcd.member", module)
    return configs


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(flotilla, ["etcd", *args], env=env)


def test_go_flag_syntax_reaches_the_member(fake_member):
    result = invoke("-name", "infra0", "--initial-advertise-peer-urls=http://127.0.0.1:41999", "-enable-v2")
    assert result.exit_code == 0, result.output
    (config,) = fake_member
    assert (config.name, config.enable_v2, config.initial_cluster) == (
        "infra0",
        True,
        "infra0=http://127.0.0.1:41999",
    )


def test_environment_variables_reach_the_member_and_the_command_line_wins(fake_member):
    result = invoke("--name=flag", env={"ETCD_NAME": "env", "ETCD_SNAPSHOT_COUNT": "42"})
    assert result.exit_code == 0, result.output
    assert (fake_member[0].name, fake_member[0].snapshot_count) == ("flag", 42)


def test_the_member_exit_code_is_the_commands(fake_member):
    assert invoke("--name=fails", "--initial-cluster=fails=http://localhost:2380").exit_code == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "flotilla etcd: flag provided but not defined: -bogus"),
        (
            ["--snapshot-count=abc"],
            'flotilla etcd: invalid value "abc" for flag -snapshot-count: parse error',
        ),
        (["-name", "x", "extra"], "flotilla etcd: error verifying flags, 'extra' is not a valid flag"),
        (["--enable-v2=maybe"], 'flotilla etcd: invalid value "maybe" for flag -enable-v2'),
        (["--", "--name=x"], "flotilla etcd: error verifying flags, '--name=x' is not a valid flag"),
        (["--listen-client-urls=http://127.0.0.1:1"], "flotilla etcd: --advertise-client-urls is required"),
        (["--initial-cluster=x=http://localhost:2380"], 'flotilla etcd: couldn\'t find local name "default"'),
    ],
)
def test_usage_errors_exit_2_with_the_reason_on_stderr(fake_member, args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert result.stdout == ""
    assert fake_member == []


def test_a_bad_variable_exits_2(fake_member):
    result = invoke(env={"ETCD_SNAPSHOT_COUNT": "abc"})
    assert result.exit_code == 2
    assert 'invalid value "abc" for ETCD_SNAPSHOT_COUNT' in result.stderr


@pytest.mark.parametrize("flag", ["-h", "--help", "-help"])
def test_help_prints_every_flag_and_exits_0(fake_member, flag):
    result = invoke(flag)
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage:\n")
    assert "  --listen-client-urls 'http://localhost:2379'  [ETCD_LISTEN_CLIENT_URLS]\n" in result.stdout
    assert fake_member == []


def test_version_prints_etcds_lines_and_exits_0(fake_member):
    result = invoke("--version")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("etcd Version: 3.4.")
    assert "API Version: 3.4" in lines
    assert any(line.startswith("Flotilla Version: ") for line in lines)
    assert fake_member == []


def test_the_flotilla_group_lists_the_command():
    result = CliRunner().invoke(flotilla, ["--help"])
    assert result.exit_code == 0
    assert "etcd" in result.output


def test_a_real_process_exits_2_on_a_bad_flag():
    # The console path: python -m flotilla.cli.main, as tools and the integration tests start it.
    done = subprocess.run(
        [sys.executable, "-m", "flotilla.cli.main", "etcd", "-bogus"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("flotilla etcd: flag provided but not defined: -bogus")

"""`flotilla cloudinit validate|apply` through CliRunner: output and exit codes (1 errors, 2 usage)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from flotilla.cli.main import flotilla

BAD = "#cloud-config\nhostname: [a]\nfoo: 1\n"
LISTING_1 = (
    "#cloud-config\n\ncoreos:\n  etcd:\n    discovery: https://discovery.etcd.io/<token>\n"
    "    addr: $private_ipv4:4001\n    peer-addr: $private_ipv4:7001\n  units:\n"
    "    - name: etcd.service\n      command: start\n    - name: fleet.service\n      command: start\n"
)


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(flotilla, ["cloudinit", *args], input=stdin)


def test_validate_prints_entries_and_exits_1_on_errors(tmp_path: Path) -> None:
    path = tmp_path / "user-data"
    path.write_text(BAD)
    result = run("validate", str(path))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        'line 2: error: incorrect type for "hostname" (want string)',
        'line 3: warning: unrecognized key "foo"',
    ]


def test_validate_exits_0_with_warnings_only() -> None:
    result = run("validate", "-", stdin="#cloud-config\nfoo: 1\n")
    assert (result.exit_code, result.output) == (0, 'line 2: warning: unrecognized key "foo"\n')


def test_validate_reads_stdin_and_is_silent_when_clean() -> None:
    result = run("validate", "-", stdin=LISTING_1)
    assert (result.exit_code, result.output) == (0, "")


def test_validate_missing_header() -> None:
    result = run("validate", "-", stdin="hostname: a\n")
    assert result.exit_code == 1
    assert result.output == 'line 1: error: must be "#cloud-config" or begin with "#!"\n'


def test_validate_unreadable_file_and_usage(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "cannot read it" in result.output
    assert run("validate").exit_code == 2


def test_validate_help_says_how_exit_codes_differ() -> None:
    assert "coreos-cloudinit exits 1 on" in run("validate", "--help").output


def test_apply_writes_under_root_and_prints_the_next_steps(tmp_path: Path) -> None:
    source = tmp_path / "user-data"
    source.write_text(LISTING_1)
    root = tmp_path / "m1"
    result = run("apply", "--root", str(root), "--private-ipv4", "127.0.0.2", str(source))
    assert result.exit_code == 0, result.output
    assert (root / "etc/environment").read_text() == "COREOS_PRIVATE_IPV4=127.0.0.2\n"
    drop_in = (root / "run/systemd/system/etcd.service.d/20-cloudinit.conf").read_text()
    assert 'Environment="ETCD_ADDR=127.0.0.2:4001"' in drop_in
    assert result.output.splitlines()[-2:] == ["start etcd.service", "start fleet.service"]


def test_apply_refuses_a_bad_document_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "bad.yaml"
    source.write_text(BAD)
    root = tmp_path / "m1"
    result = CliRunner().invoke(flotilla, ["cloudinit", "apply", "--root", str(root), str(source)])
    assert result.exit_code == 1
    assert f'{source}:2: error: incorrect type for "hostname" (want string)' in result.stderr
    assert "not applied (1 error(s))" in result.stderr
    assert not root.exists()


def test_apply_needs_root() -> None:
    assert run("apply", "-", stdin=LISTING_1).exit_code == 2

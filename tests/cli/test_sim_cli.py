"""`flotilla sim`: exit codes and output a user relies on."""

from click.testing import CliRunner

from flotilla.cli.main import flotilla


def test_run_prints_the_settings_and_passes():
    result = CliRunner().invoke(flotilla, ["sim", "run", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "seed 1: seed=1 members=" in result.output
    assert "committed_entries=" in result.output
    assert result.output.rstrip().endswith("ok")


def test_sweep_prints_a_summary_line():
    result = CliRunner().invoke(flotilla, ["sim", "sweep", "--seeds", "0-9", "--workers", "1"])
    assert result.exit_code == 0, result.output
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith("seeds=10 violations=0 committed_entries=")


def test_a_violation_exits_1_and_names_the_replay_command():
    from flotilla.raft import Bug
    from flotilla.raft.bugs import injected

    with injected(Bug.DOUBLE_VOTE):
        result = CliRunner().invoke(flotilla, ["sim", "sweep", "--seeds", "0-20", "--workers", "1"])
    assert result.exit_code == 1
    assert "VIOLATION seed" in result.output
    assert "replay: flotilla sim run --seed" in result.output


def test_a_bad_seed_range_is_a_usage_error():
    result = CliRunner().invoke(flotilla, ["sim", "sweep", "--seeds", "ten"])
    assert result.exit_code == 2
    assert "is not a seed range" in result.output

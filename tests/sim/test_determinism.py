"""One seed, one history: a replay reproduces every event exactly."""

from flotilla.sim import SimConfig, run_seed


def _trace(seed: int) -> tuple[list[str], object]:
    lines: list[str] = []
    outcome = run_seed(seed, trace=lines.append)
    return lines, outcome


def test_same_seed_same_history():
    first_lines, first = _trace(7)
    second_lines, second = _trace(7)
    assert first_lines == second_lines
    assert first == second
    assert len(first_lines) > 100


def test_different_seeds_differ():
    assert _trace(7)[0] != _trace(8)[0]


def test_config_is_derived_from_the_seed_and_printed():
    config = SimConfig.from_seed(42)
    assert config == SimConfig.from_seed(42)
    text = config.describe()
    assert "seed=42" in text and "loss=" in text and "crash_rate_per_s=" in text

"""Every seed that once exposed a bug stays fixed."""

from pathlib import Path

import pytest

from flotilla.sim import replay_command, run_seed

SEED_FILES = sorted((Path(__file__).parent / "seeds").glob("*.txt"))


def _seed_of(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("seed:"):
            return int(line.split(":", 1)[1])
    raise AssertionError(f"{path}: no 'seed: N' line")


def test_there_are_regression_seeds():
    assert SEED_FILES, "tests/sim/seeds holds no seed files"


@pytest.mark.parametrize("path", SEED_FILES, ids=[p.stem for p in SEED_FILES])
def test_regression_seed_passes(path: Path):
    seed = _seed_of(path)
    outcome = run_seed(seed)
    assert outcome.ok, f"{path.name}: {outcome.violation}\nreplay: {replay_command(seed)}"
    assert outcome.committed > 0

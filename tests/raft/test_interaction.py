"""Golden interaction scripts: every tests/raft/testdata/*.txt is run and compared with its expected output.

The expected outputs are specifications (checked by hand against the raft paper, the thesis and etcd's
behaviour), not recordings. ``FLOTILLA_REWRITE=1`` rewrites the files with the actual output, for
writing a new script; read every changed line before committing it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from interaction import run_file

TESTDATA = Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("*.txt"))

# Scripts whose expected output is right and whose actual output is not: known raft bugs.
KNOWN_BUGS: dict[str, str] = {}


def _param(path: Path) -> object:
    reason = KNOWN_BUGS.get(path.name)
    marks = [pytest.mark.xfail(strict=True, reason=f"raft bug: {reason}")] if reason else []
    return pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", [_param(p) for p in SCRIPTS])
def test_script(path: Path) -> None:
    expected, actual = run_file(path)
    if expected == actual:
        return
    if os.environ.get("FLOTILLA_REWRITE") == "1" and path.name not in KNOWN_BUGS:
        path.write_text(actual)
        return
    diff = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), f"{path.name} (expected)", "actual", lineterm=""
    )
    pytest.fail("\n".join(diff), pytrace=False)

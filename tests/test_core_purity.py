"""DESIGN decision 4: cores do no I/O.

Raft, the MVCC keyspace, the v2 tree, unit parsing and the scheduler's planner must stay deterministic:
no asyncio, sockets, clocks, threads or subprocesses, and no global random (randomness arrives as a
seeded ``random.Random``). The check parses source with ``ast`` instead of importing it, so a forbidden
import is caught even on a code path that never runs.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

CORE_PACKAGES = (
    "flotilla.raft",
    "flotilla.mvcc",
    "flotilla.v2store",
    "flotilla.linearizability",
    "flotilla.units",
    "flotilla.fleet.planner",
    "flotilla.fleet.assignments",
    "flotilla.fleet.agent_plan",
    "flotilla.cloudinit.parse",
    "flotilla.cloudinit.render",
    "flotilla.cloudinit.schema",
    "flotilla.cloudinit.report",
    "flotilla.cloudinit.model",
    "flotilla.cloudinit.substitute",
    "flotilla.cloudinit.decode",
    "flotilla.machine.vendor",
    "flotilla.localcluster.config",
    "flotilla.localcluster.report",
)

FORBIDDEN_MODULES = frozenset(
    {"asyncio", "socket", "selectors", "threading", "time", "multiprocessing", "subprocess"}
)

# The only name a core may take from `random`: the class, to be constructed from a seed.
ALLOWED_RANDOM_NAMES = frozenset({"Random"})


def find_violations(source: str, filename: str = "<string>") -> list[str]:
    """Return one ``file:line: reason`` string per I/O import or global-random use in ``source``."""
    tree = ast.parse(source, filename=filename)
    random_aliases: set[str] = set()
    violations: list[str] = []

    def flag(node: ast.AST, reason: str) -> None:
        violations.append(f"{filename}:{node.lineno}: {reason}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in FORBIDDEN_MODULES:
                    flag(node, f"imports {alias.name}")
                elif alias.name == "random":
                    random_aliases.add(alias.asname or "random")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top in FORBIDDEN_MODULES:
                flag(node, f"imports from {node.module}")
            elif node.module == "random":
                for alias in node.names:
                    if alias.name not in ALLOWED_RANDOM_NAMES:
                        flag(node, f"uses the global random (from random import {alias.name})")

    # Second pass: aliases must be known before attribute uses are judged, wherever the import sits.
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in random_aliases
            and node.attr not in ALLOWED_RANDOM_NAMES
        ):
            flag(node, f"uses the global random ({node.value.id}.{node.attr})")

    return sorted(violations, key=lambda v: int(v.rsplit(":", 2)[-2]))


def _src_flotilla_dir() -> Path:
    # find_spec on the top-level package locates it without importing any core.
    spec = importlib.util.find_spec("flotilla")
    assert spec is not None and spec.submodule_search_locations, "the flotilla package is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def _core_files(package: str) -> list[Path] | None:
    """The .py files of ``package`` (a package directory or a single module), or None if absent."""
    relative = Path(*package.split(".")[1:])
    base = _src_flotilla_dir() / relative
    if base.is_dir():
        return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)
    module = base.with_suffix(".py")
    if module.is_file():
        return [module]
    return None


def test_raft_core_exists() -> None:
    # Without at least one core the purity check below would pass vacuously.
    assert _core_files("flotilla.raft") is not None, "flotilla.raft is missing; the purity check has no core"


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_core_does_no_io(package: str) -> None:
    files = _core_files(package)
    if files is None:
        pytest.skip(f"{package} does not exist yet")
    violations: list[str] = []
    for path in files:
        violations.extend(find_violations(path.read_text(encoding="utf-8"), str(path)))
    assert not violations, f"{package} must do no I/O (DESIGN decision 4):\n" + "\n".join(violations)


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "from asyncio import sleep",
        "import random\nx = random.randint(1, 2)",
        "from random import choice",
        "import socket as s",
        "import threading.local",
        "from subprocess import run",
        "import random as r\nr.seed(3)",
        "from random import *",
    ],
)
def test_checker_flags_io_and_global_random(source: str) -> None:
    assert find_violations(source), f"not flagged: {source!r}"


@pytest.mark.parametrize(
    "source",
    [
        "import random\nrng = random.Random(7)",
        "from random import Random",
        "import random\ndef f(rng: random.Random) -> int:\n    return rng.randint(1, 2)",
        "from . import time",
        "import dataclasses, heapq",
    ],
)
def test_checker_allows_seeded_random_and_pure_imports(source: str) -> None:
    assert find_violations(source) == []


def test_checker_reports_file_and_line() -> None:
    assert find_violations("import os\nimport time\n", "core.py") == ["core.py:2: imports time"]

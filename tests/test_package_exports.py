"""Every package's ``__init__.py`` exports its public names and nothing else (STYLE 8)."""

import importlib
import importlib.util
import types
from pathlib import Path

import pytest


def _packages() -> list[str]:
    spec = importlib.util.find_spec("flotilla")
    assert spec is not None and spec.submodule_search_locations, "the flotilla package is not installed"
    root = Path(next(iter(spec.submodule_search_locations)))
    found: list[str] = []

    # Descend only through real packages: a directory without __init__.py is not importable by this name.
    def walk(directory: Path, name: str) -> None:
        found.append(name)
        for child in sorted(directory.iterdir()):
            if child.is_dir() and (child / "__init__.py").is_file():
                walk(child, f"{name}.{child.name}")

    walk(root, "flotilla")
    return found


@pytest.mark.parametrize("package", _packages())
def test_package_exports_exactly_its_public_names(package: str) -> None:
    module = importlib.import_module(package)
    assert hasattr(module, "__all__"), f"{package}/__init__.py defines no __all__"
    exported = list(module.__all__)
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names undefined attributes: {missing}"
    unexported = sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        # Submodules appear as attributes once imported anywhere; they are not exports.
        and not isinstance(value, types.ModuleType)
        # `from __future__ import annotations` binds a compiler directive, not an export.
        and type(value).__module__ != "__future__"
        and name not in exported
    )
    assert not unexported, f"{package} has public names missing from __all__: {unexported}"

"""Finding and loading unit files under a manager's root, as systemd does.

A unit is looked up by name in the search path (``/etc`` over ``/run`` over ``/lib``); an instance
``foo@bar.service`` without its own file loads the template ``foo@.service``. Drop-ins come from every
``NAME.d/*.conf`` (and the template's ``foo@.service.d``), sorted by file name, a file in a higher-priority
directory hiding one of the same name below it. ``NAME.wants/`` and ``NAME.requires/`` directories add
dependencies (that is what ``systemctl enable`` creates). A fragment linked to ``/dev/null`` is masked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flotilla.systemd.layout import Layout
from flotilla.units import (
    UNIT_SUFFIXES,
    SpecifierContext,
    UnitError,
    UnitFile,
    parse_unit_name,
    parse_unit_text,
    service_config,
)

__all__ = ["LoadedUnit", "load_unit", "normalize_unit_name"]

# Targets every manager knows without a file, so WantedBy=multi-user.target works out of the box.
BUILTIN_TARGETS = {
    "default.target": "Default target",
    "multi-user.target": "Multi-User System",
    "basic.target": "Basic System",
}


@dataclass
class LoadedUnit:
    """The result of loading one name: a config, or why there is none."""

    name: str
    load_state: str  # loaded | not-found | bad-setting | masked
    load_error: str = ""
    fragment_path: str = ""
    dropin_paths: tuple[str, ...] = ()
    config: Any = None  # flotilla.units.ServiceConfig
    unit_file_state: str = ""
    sources: list[tuple[str, str]] = field(default_factory=list)  # (path, text) for `systemctl cat`

    @property
    def unit_type(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def normalize_unit_name(name: str) -> str:
    """``m`` (or ``web.v2``: "v2" is no unit type) means ``m.service``, as systemctl mangles names."""
    return name if "." in name and name.rsplit(".", 1)[-1] in UNIT_SUFFIXES else f"{name}.service"


def _find_fragment(layout: Layout, name: str) -> Path | None:
    for directory in layout.unit_dirs:
        candidate = directory / name
        if candidate.is_symlink() or candidate.exists():
            return candidate
    return None


def _dropins(layout: Layout, names: list[str]) -> list[Path]:
    chosen: dict[str, Path] = {}
    for name in names:  # the template's drop-ins first, the instance's override them
        for directory in reversed(layout.unit_dirs):  # lowest priority first, higher ones replace
            folder = directory / f"{name}.d"
            if folder.is_dir():
                for conf in folder.glob("*.conf"):
                    chosen[conf.name] = conf
    return [chosen[key] for key in sorted(chosen)]


def _dependency_dirs(layout: Layout, names: list[str], kind: str) -> list[str]:
    found: list[str] = []
    for name in names:
        for directory in layout.unit_dirs:
            folder = directory / f"{name}.{kind}"
            if folder.is_dir():
                found.extend(sorted(entry.name for entry in folder.iterdir()))
    return found


def _unit_file_state(layout: Layout, fragment: Path, config: Any) -> str:
    if fragment.is_symlink() and os.readlink(fragment) == "/dev/null":
        return "masked"
    if fragment.is_symlink() and fragment.parent == layout.run_units:
        return "linked-runtime"
    if fragment.is_symlink():
        return "linked"
    wanted = getattr(config, "wanted_by", ()) + getattr(config, "required_by", ())
    if not wanted:
        return "static"
    for target in wanted:
        for directory in (layout.etc_units, layout.run_units):
            for kind in ("wants", "requires"):
                if (directory / f"{target}.{kind}" / fragment.name).is_symlink():
                    return "enabled-runtime" if directory == layout.run_units else "enabled"
    return "disabled"


def load_unit(layout: Layout, name: str, specifiers: SpecifierContext) -> LoadedUnit:
    """Load ``name``; never raises for a bad file (the answer says ``bad-setting`` and why)."""
    try:
        parsed_name = parse_unit_name(name)
    except UnitError as error:
        return LoadedUnit(name, "not-found", load_error=str(error))
    search = [name]
    if parsed_name.is_instance and parsed_name.template:
        search.append(parsed_name.template)
    fragment = next((f for f in (_find_fragment(layout, n) for n in search) if f is not None), None)
    if fragment is None:
        if name in BUILTIN_TARGETS:
            return _builtin_target(layout, name, specifiers)
        return LoadedUnit(name, "not-found", load_error=f"Unit {name} not found.")
    if fragment.is_symlink() and os.readlink(fragment) == "/dev/null":
        return LoadedUnit(name, "masked", fragment_path=str(fragment), unit_file_state="masked")
    dropin_names = list(reversed(search))
    dropins = _dropins(layout, dropin_names)
    sources: list[tuple[str, str]] = []
    try:
        text = fragment.read_text()
        unit = parse_unit_text(text, str(fragment))
        sources.append((str(fragment), text))
        extra = []
        for path in dropins:
            dropin_text = path.read_text()
            extra.append(parse_unit_text(dropin_text, str(path)))
            sources.append((str(path), dropin_text))
        unit = unit.with_dropins(*extra, *_dependency_dropins(layout, dropin_names))
        config = service_config(unit, name, replace(specifiers, unit_name=name))
    except (OSError, UnicodeDecodeError) as error:
        return LoadedUnit(name, "error", load_error=f"{fragment}: {error}", fragment_path=str(fragment))
    except UnitError as error:  # `systemctl cat` still shows the files
        return LoadedUnit(
            name, "bad-setting", load_error=str(error), fragment_path=str(fragment), sources=sources
        )
    return LoadedUnit(
        name,
        "loaded",
        fragment_path=str(fragment),
        dropin_paths=tuple(str(p) for p in dropins),
        config=config,
        unit_file_state=_unit_file_state(layout, fragment, config),
        sources=sources,
    )


def _dependency_dropins(layout: Layout, names: list[str]) -> list[UnitFile]:
    """``NAME.wants/`` and ``NAME.requires/`` entries as if they were Wants=/Requires= lines."""
    text = ""
    for kind, key in (("wants", "Wants"), ("requires", "Requires")):
        entries = _dependency_dirs(layout, names, kind)
        if entries:
            text += f"{key}={' '.join(entries)}\n"
    return [parse_unit_text("[Unit]\n" + text, "<dependency directories>")] if text else []


def _builtin_target(layout: Layout, name: str, specifiers: SpecifierContext) -> LoadedUnit:
    text = f"[Unit]\nDescription={BUILTIN_TARGETS[name]}\n"
    if name == "default.target":
        text += "Requires=multi-user.target\nAfter=multi-user.target\n"
    unit = parse_unit_text(text, f"<builtin {name}>").with_dropins(*_dependency_dropins(layout, [name]))
    config = service_config(unit, name, replace(specifiers, unit_name=name))
    return LoadedUnit(name, "loaded", config=config, unit_file_state="static")

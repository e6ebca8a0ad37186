"""``FakeUnitManager``: an in-memory twin of the ``UnitManager`` Protocol for unit tests (fleet's agent).

It keeps the unit-file search path in a dict and parses units with ``flotilla.units`` exactly as the
embedded manager does, so LOAD states, descriptions, ``systemctl cat`` text, enable links and job results
match; it starts no process. A job finishes before its coroutine returns, so tests need no waiting:

- start: simple/exec/notify/forking/idle -> ``active/running`` with a made-up main PID; a oneshot ->
  ``inactive/dead`` (``active/exited`` with RemainAfterExit=yes); a unit without ExecStart= ->
  ``active/exited``; a target -> ``active/active``;
- stop -> ``inactive/dead`` (a failed unit stays failed until ``reset_failed``);
- ``crash(name, exit_status)`` / ``kill_unit``: the main process ends; Restart= decides between
  ``activating/auto-restart`` (the restart waits for ``complete_restart`` or a start job) and
  ``failed``/``inactive``; ``fail_next_start(name)`` makes the next activation fail.

Dependencies follow the manager's rules in a fixed order: a start pulls in Requires/Wants/BindsTo and starts
the members in After=/Before= order (ties by name); a failed strong dependency gives ``dependency``; a stop
also stops what Requires/BindsTo/PartOf the unit, dependents first (Conflicts=/Requisite= are ignored, as
by the manager). Not modelled: StartLimitBurst= (the manager refuses a 6th start within 10 s; the fake never
does), timeouts, ExecStop*/ExecReload, process trees, the journal.

The only I/O is reading the files given to ``link_unit_file`` (the link points at them, so a
``daemon_reload`` re-reads them, as with the real manager); ``add_unit`` puts text straight into the fake
search path. Timestamps come from a counter (one tick per state change), not a clock. Every Protocol call is
appended to ``calls`` as ``(method, argument)`` so a test can assert what the code under test asked for.
"""

from __future__ import annotations

import fnmatch
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from flotilla.systemd.errors import NoSuchUnit
from flotilla.systemd.layout import Layout
from flotilla.systemd.loader import BUILTIN_TARGETS, normalize_unit_name
from flotilla.systemd.protocol import JobResult, UnitStatus, job_failure_message, job_refusal
from flotilla.units import SpecifierContext, UnitError, parse_unit_name, parse_unit_text, service_config

__all__ = ["FakeUnitManager"]

_STRONG = ("requires", "binds_to")
_PULLED = ("requires", "wants", "binds_to")
_MASK_TARGET = "/dev/null"
_FIRST_FAKE_PID = 4000
# A main process killed by one of these ended cleanly (systemd's default success signals).
_CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})
# Signals whose default action does not end a process: kill_unit with them changes no state.
_HARMLESS_SIGNALS = frozenset(
    {0, signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH}
    | {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
)


@dataclass
class _Loaded:
    """One name's load result, as ``flotilla.systemd.loader.LoadedUnit``."""

    name: str
    load_state: str
    load_error: str = ""
    fragment_path: str = ""
    dropin_paths: tuple[str, ...] = ()
    config: Any = None
    unit_file_state: str = ""
    sources: list[tuple[str, str]] = field(default_factory=list)

    @property
    def unit_type(self) -> str:
        return self.name.rsplit(".", 1)[-1]


class _SearchPath:
    """The unit directories of a layout, in memory: files (path -> text) and symlinks (path -> target)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.texts: dict[str, str] = {}
        self.links: dict[str, str] = {}

    def dirs(self) -> list[str]:
        return [str(d) for d in self.layout.unit_dirs]

    def exists(self, path: str) -> bool:
        return path in self.texts or path in self.links

    def read(self, path: str) -> str:
        """A file's text, following a link; a link out of the fake tree reads the real file."""
        target = self.links.get(path, path)
        if target in self.texts:
            return self.texts[target]
        return Path(target).read_text()

    def fragment(self, names: list[str]) -> str | None:
        for name in names:
            for directory in self.dirs():
                candidate = f"{directory}/{name}"
                if self.exists(candidate):
                    return candidate
        return None

    def dropins(self, names: list[str]) -> list[str]:
        chosen: dict[str, str] = {}
        for name in names:  # the template's drop-ins first, the instance's override them
            for directory in reversed(self.dirs()):  # lowest priority first, higher ones replace
                prefix = f"{directory}/{name}.d/"
                for path in self.texts:
                    rest = path.removeprefix(prefix)
                    if rest != path and "/" not in rest and rest.endswith(".conf"):
                        chosen[rest] = path
        return [chosen[key] for key in sorted(chosen)]

    def dependency_text(self, names: list[str]) -> str:
        """``NAME.wants/`` and ``NAME.requires/`` entries as the Wants=/Requires= lines they stand for."""
        text = ""
        # One pass over the links with string splits: loads are frequent (fleet's scale bench has
        # thousands of units per fake), so no path objects here.
        by_parent: dict[str, list[str]] = {}
        for link in sorted(self.links):
            parent, _, base = link.rpartition("/")
            if parent.endswith((".wants", ".requires")):
                by_parent.setdefault(parent, []).append(base)
        for kind, key in (("wants", "Wants"), ("requires", "Requires")):
            entries = [
                base
                for name in names
                for directory in self.dirs()
                for base in by_parent.get(f"{directory}/{name}.{kind}", ())
            ]
            if entries:
                text += f"{key}={' '.join(entries)}\n"
        return text

    def unit_file_state(self, fragment: str, config: Any) -> str:
        run_units = str(self.layout.run_units)
        if self.links.get(fragment) == _MASK_TARGET:
            return "masked"
        if fragment in self.links:
            return "linked-runtime" if str(PurePosixPath(fragment).parent) == run_units else "linked"
        name = PurePosixPath(fragment).name
        wanted = getattr(config, "wanted_by", ()) + getattr(config, "required_by", ())
        if not wanted:
            return "static"
        for target in wanted:
            for directory in (str(self.layout.etc_units), run_units):
                for kind in ("wants", "requires"):
                    if f"{directory}/{target}.{kind}/{name}" in self.links:
                        return "enabled-runtime" if directory == run_units else "enabled"
        return "disabled"


def _load(disk: _SearchPath, name: str, specifiers: SpecifierContext) -> _Loaded:
    """Load ``name`` as ``flotilla.systemd.loader.load_unit`` does, from the in-memory search path."""
    try:
        parsed_name = parse_unit_name(name)
    except UnitError as error:
        return _Loaded(name, "not-found", load_error=str(error))
    search = [name]
    if parsed_name.is_instance and parsed_name.template:
        search.append(parsed_name.template)
    fragment = disk.fragment(search)
    if fragment is None:
        if name in BUILTIN_TARGETS:
            return _builtin_target(disk, name, specifiers)
        return _Loaded(name, "not-found", load_error=f"Unit {name} not found.")
    if disk.links.get(fragment) == _MASK_TARGET:
        return _Loaded(name, "masked", fragment_path=fragment, unit_file_state="masked")
    dropin_names = list(reversed(search))
    dropins = disk.dropins(dropin_names)
    try:
        text = disk.read(fragment)
        unit = parse_unit_text(text, fragment)
        sources = [(fragment, text)]
        extra = []
        for path in dropins:
            extra.append(parse_unit_text(disk.texts[path], path))
            sources.append((path, disk.texts[path]))
        dependencies = disk.dependency_text(dropin_names)
        if dependencies:
            extra.append(parse_unit_text("[Unit]\n" + dependencies, "<dependency directories>"))
        config = service_config(unit.with_dropins(*extra), name, replace(specifiers, unit_name=name))
    except (OSError, UnicodeDecodeError) as error:
        return _Loaded(name, "error", load_error=f"{fragment}: {error}", fragment_path=fragment)
    except UnitError as error:
        return _Loaded(name, "bad-setting", load_error=str(error), fragment_path=fragment)
    return _Loaded(
        name,
        "loaded",
        fragment_path=fragment,
        dropin_paths=tuple(dropins),
        config=config,
        unit_file_state=disk.unit_file_state(fragment, config),
        sources=sources,
    )


def _builtin_target(disk: _SearchPath, name: str, specifiers: SpecifierContext) -> _Loaded:
    text = f"[Unit]\nDescription={BUILTIN_TARGETS[name]}\n"
    if name == "default.target":
        text += "Requires=multi-user.target\nAfter=multi-user.target\n"
    text += disk.dependency_text([name])
    config = service_config(
        parse_unit_text(text, f"<builtin {name}>"), name, replace(specifiers, unit_name=name)
    )
    return _Loaded(name, "loaded", config=config, unit_file_state="static")


class _FakeUnit:
    """One loaded unit's runtime state; transitions are the methods, each ending in a systemd state."""

    def __init__(self, manager: FakeUnitManager, name: str, config: Any) -> None:
        self.manager, self.name, self.config = manager, name, config
        self.unit_type = name.rsplit(".", 1)[-1]
        self.active_state, self.sub_state, self.result = "inactive", "dead", "success"
        self.main_pid = 0
        self.exec_main_code, self.exec_main_status, self.exec_main_pid = "", 0, 0
        self.n_restarts = 0
        self.fail_next: str | None = None  # the result the next activation fails with
        self.timestamps = {"active_enter": 0, "active_exit": 0, "inactive_enter": 0, "inactive_exit": 0}
        self.state_change_us = 0

    def set_state(self, active: str, sub: str) -> None:
        was_active = self.active_state
        stamp = self.manager._tick()
        if active != was_active:
            if active == "active":
                self.timestamps["active_enter"] = stamp
            if was_active == "active":
                self.timestamps["active_exit"] = stamp
            if active in ("inactive", "failed"):
                self.timestamps["inactive_enter"] = stamp
            if was_active in ("inactive", "failed"):
                self.timestamps["inactive_exit"] = stamp
        self.active_state, self.sub_state = active, sub
        self.state_change_us = stamp

    @property
    def has_main_process(self) -> bool:
        return self.main_pid != 0

    def start(self) -> str:
        """A start job on this unit alone; returns its result."""
        if self.unit_type not in ("service", "target"):
            return "invalid"  # as the embedded manager: only services and targets run here
        if self.active_state in ("active", "reloading"):
            return "done"
        if self.sub_state == "auto-restart":
            self.n_restarts += 1  # a start during RestartSec restarts at once, as in systemd
        self.result = "success"
        return self._activate()

    def _activate(self) -> str:
        if self.unit_type == "target":
            self.set_state("active", "active")
            return "done"
        self.set_state("activating", "start")
        if self.fail_next is not None:
            self.result, self.fail_next = self.fail_next, None
            self._settle()
            if self.sub_state == "auto-restart":
                return "failed"
            return "timeout" if self.result == "timeout" else "failed"
        config = self.config
        self.exec_main_code, self.exec_main_status = "", 0
        if config.type == "oneshot":
            self.exec_main_pid = self.manager._next_pid()
            self.exec_main_code = "exited"
            self.set_state(*(("active", "exited") if config.remain_after_exit else ("inactive", "dead")))
        elif not config.exec_start:
            self.set_state("active", "exited")  # nothing to run: systemd keeps such a service up
        else:
            self.main_pid = self.exec_main_pid = self.manager._next_pid()
            self.set_state("active", "running")
        return "done"

    def stop(self) -> None:
        if self.active_state in ("inactive", "failed"):
            return
        if self.has_main_process:
            # The stop's SIGTERM ends the main process; TERM counts as a clean end.
            self.exec_main_code, self.exec_main_status = "killed", int(signal.SIGTERM)
            self.main_pid = 0
        # A stop during auto-restart keeps the failure that caused the restart, as the manager does.
        self.set_state(*(("failed", "failed") if self.result != "success" else ("inactive", "dead")))

    def main_exited(self, code: str, status: int) -> None:
        """The main process ended on its own (``code`` is ``exited`` or ``killed``)."""
        self.exec_main_code, self.exec_main_status = code, status
        self.main_pid = 0
        if not self._is_clean(code, status):
            self.result = "exit-code" if code == "exited" else "signal"
        elif self.config.remain_after_exit:
            self.set_state("active", "exited")
            return
        self._settle()

    def _settle(self) -> None:
        """The activation ended: Restart= schedules a restart, or the unit rests failed or dead."""
        if self._should_restart():
            self.set_state("activating", "auto-restart")
        elif self.result != "success":
            self.set_state("failed", "failed")
        else:
            self.set_state("inactive", "dead")

    def complete_restart(self) -> str:
        """RestartSec has passed: activate again."""
        self.n_restarts += 1
        self.result = "success"
        return self._activate()

    def _is_clean(self, code: str, status: int) -> bool:
        if code != "exited":
            return status in _CLEAN_SIGNALS or status in self.config.success_signals
        return status == 0 or status in self.config.success_exit_status

    def _should_restart(self) -> bool:
        config, result = self.config, self.result
        if self.exec_main_code:
            is_signal = self.exec_main_code != "exited"
            for spec, verdict in (
                (config.restart_prevent_exit_status, False),
                (config.restart_force_exit_status, True),
            ):
                if self.exec_main_status in (spec.signals if is_signal else spec.codes):
                    return verdict
        policy = config.restart
        if policy == "no" or result == "start-limit-hit":
            return False
        if policy == "always":
            return True
        if result == "success":
            return policy == "on-success"
        return {
            "on-failure": True,
            "on-abnormal": result in ("signal", "core-dump", "timeout", "watchdog"),
            "on-abort": result in ("signal", "core-dump"),
            "on-watchdog": result == "watchdog",
        }.get(policy, False)

    def reset_failed(self) -> None:
        if self.active_state == "failed":
            self.result = "success"
            self.set_state("inactive", "dead")

    def status(self) -> UnitStatus:
        running = self.active_state != "inactive" and self.main_pid
        return UnitStatus(
            name=self.name,
            load_state="loaded",
            active_state=self.active_state,
            sub_state=self.sub_state,
            description=self.config.description or self.name,
            result=self.result,
            main_pid=self.main_pid,
            exec_main_code=self.exec_main_code,
            exec_main_status=self.exec_main_status,
            exec_main_pid=self.exec_main_pid,
            n_restarts=self.n_restarts,
            active_enter_us=self.timestamps["active_enter"],
            active_exit_us=self.timestamps["active_exit"],
            inactive_enter_us=self.timestamps["inactive_enter"],
            inactive_exit_us=self.timestamps["inactive_exit"],
            state_change_us=self.state_change_us,
            tasks=(self.main_pid,) if running else (),
            unit_type=self.unit_type,
        )


class FakeUnitManager:
    """The ``UnitManager`` Protocol in memory, with hooks for tests (see the module docstring).

    ``root`` only names the paths the fake reports (``ROOT/etc/systemd/system/NAME`` and so on); nothing
    is written there.
    """

    def __init__(self, *, root: str = "/", hostname: str = "localhost", machine_id: str = "0" * 32) -> None:
        self.layout = Layout(Path(root))
        self.calls: list[tuple[str, str | None]] = []
        self._disk = _SearchPath(self.layout)
        self._specifiers = SpecifierContext(unit_name="", hostname=hostname, machine_id=machine_id)
        self._loaded: dict[str, _Loaded] = {}
        self._units: dict[str, _FakeUnit] = {}
        self._clock = 0
        self._pid = _FIRST_FAKE_PID

    async def __aenter__(self) -> FakeUnitManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    # ------------------------------------------------------------------ test hooks

    def add_unit(self, name: str, text: str, *, runtime: bool = False) -> str:
        """Write a unit file into the fake search path (``/etc``, or ``/run`` with ``runtime``); returns its
        path. Like a file written under a running systemd, a unit already loaded sees it after
        ``daemon_reload``."""
        directory = self.layout.run_units if runtime else self.layout.etc_units
        path = str(directory / name)
        self._disk.links.pop(path, None)
        self._disk.texts[path] = text
        return path

    def add_dropin(self, name: str, conf_name: str, text: str) -> str:
        """Write ``/etc/systemd/system/NAME.d/CONF_NAME`` (a ``.conf`` drop-in); returns its path."""
        path = str(self.layout.etc_units / f"{name}.d" / conf_name)
        self._disk.texts[path] = text
        return path

    def remove_unit(self, name: str) -> None:
        """Delete the unit's files (not links) and drop-ins from every directory of the search path."""
        for directory in self._disk.dirs():
            self._disk.texts.pop(f"{directory}/{name}", None)
            for path in [p for p in self._disk.texts if p.startswith(f"{directory}/{name}.d/")]:
                del self._disk.texts[path]

    def mask(self, name: str) -> None:
        """Link ``/etc/systemd/system/NAME`` to /dev/null, as ``systemctl mask`` (seen after a reload)."""
        self._disk.links[str(self.layout.etc_units / name)] = _MASK_TARGET

    def fail_next_start(self, name: str, result: str = "exit-code") -> None:
        """Make the unit's next activation fail with ``result`` (a start job, restart or auto-restart)."""
        unit = self._require_unit(normalize_unit_name(name))
        unit.fail_next = result

    def crash(self, name: str, exit_status: int = 1, *, signal_number: int | None = None) -> None:
        """End the running main process with ``exit_status`` (or killed by ``signal_number``). Restart=
        then decides between ``activating/auto-restart`` and ``failed`` (``inactive`` after a clean end);
        units with BindsTo= on it stop."""
        unit = self._require_unit(normalize_unit_name(name))
        if not unit.has_main_process:
            raise ValueError(
                f"{unit.name} has no main process to crash (it is {unit.active_state}/{unit.sub_state}); "
                "start it first"
            )
        if signal_number is None:
            unit.main_exited("exited", exit_status)
        else:
            unit.main_exited("killed", signal_number)
        self._stop_bound_to(unit)

    def complete_restart(self, name: str) -> str:
        """End the RestartSec wait of a unit in ``auto-restart``: it starts again; returns the result."""
        unit = self._require_unit(normalize_unit_name(name))
        if unit.sub_state != "auto-restart":
            raise ValueError(
                f"{unit.name} is not waiting to restart (it is {unit.active_state}/{unit.sub_state})"
            )
        result = unit.complete_restart()
        self._stop_bound_to(unit)
        return result

    def _require_unit(self, name: str) -> _FakeUnit:
        unit = self._unit(name)
        if unit is None:
            loaded = self._load_cached(name)
            if loaded.load_state == "not-found":
                raise NoSuchUnit(name)
            raise ValueError(
                f"{name} cannot be loaded ({loaded.load_state}): {loaded.load_error}; fix the unit file, "
                "then call daemon_reload()"
            )
        return unit

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _next_pid(self) -> int:
        self._pid += 1
        return self._pid

    # ------------------------------------------------------------------ loading

    def _load_cached(self, name: str) -> _Loaded:
        loaded = self._loaded.get(name)
        if loaded is None:
            loaded = self._loaded[name] = _load(self._disk, name, self._specifiers)
        return loaded

    def _unit(self, name: str) -> _FakeUnit | None:
        unit = self._units.get(name)
        if unit is None:
            loaded = self._load_cached(name)
            if loaded.load_state != "loaded":
                return None
            unit = self._units[name] = _FakeUnit(self, name, loaded.config)
        return unit

    def _deps(self, name: str, kinds: tuple[str, ...]) -> list[str]:
        config = self._load_cached(name).config
        return [] if config is None else [dep for kind in kinds for dep in getattr(config, kind, ())]

    def _closure(self, roots: list[str], kinds: tuple[str, ...]) -> set[str]:
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(self._deps(name, kinds))
        return seen

    def _reverse_closure(self, name: str) -> set[str]:
        """``name`` and every known unit that Requires/BindsTo/PartOf it, transitively."""
        members = {name}
        changed = True
        while changed:
            changed = False
            for other in list(self._units):
                if other not in members and set(self._deps(other, (*_STRONG, "part_of"))) & members:
                    members.add(other)
                    changed = True
        return {m for m in members if self._unit(m) is not None}

    def _after(self, name: str, members: set[str]) -> set[str]:
        after = set(self._deps(name, ("after",))) & members
        after.update(other for other in members if name in self._deps(other, ("before",)))
        after.discard(name)
        return after

    def _start_order(self, members: set[str]) -> list[tuple[str, set[str]]]:
        """Members in After= order (ties by name) with the members each waits for; an edge that closes an
        ordering cycle is dropped, as the embedded manager does."""
        waits = {m: self._after(m, members) for m in members}
        kept: dict[str, set[str]] = {m: set() for m in members}
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(node: str) -> None:
            state[node] = 1
            for predecessor in sorted(waits[node]):
                if state.get(predecessor) == 1:
                    continue
                kept[node].add(predecessor)
                if predecessor not in state:
                    visit(predecessor)
            state[node] = 2
            order.append(node)

        for node in sorted(members):
            if node not in state:
                visit(node)
        return [(m, kept[m]) for m in order]

    # ------------------------------------------------------------------ jobs

    async def start_unit(self, name: str) -> JobResult:
        name = normalize_unit_name(name)
        self.calls.append(("start_unit", name))
        refusal = self._refusal(name, "start")
        if refusal is not None:
            return refusal
        strong = self._closure([name], _STRONG)
        for member in sorted(self._closure([name], _PULLED)):
            if member != name and member in strong and self._unit(member) is None:
                state = self._load_cached(member).load_state
                reason = "not found" if state == "not-found" else "failed to load"
                return JobResult(name, "start", "dependency", f"Unit {member} {reason}.")
        results = self._run_start_jobs(self._closure([name], _PULLED))
        return JobResult(name, "start", results[name], self._failure_message(name, results[name]))

    async def stop_unit(self, name: str) -> JobResult:
        name = normalize_unit_name(name)
        self.calls.append(("stop_unit", name))
        if name not in self._units and self._load_cached(name).load_state == "not-found":
            return JobResult(name, "stop", "invalid", f"Unit {name} not loaded.")
        self._run_stop_jobs(self._reverse_closure(name))
        return JobResult(name, "stop", "done")

    async def restart_unit(self, name: str) -> JobResult:
        name = normalize_unit_name(name)
        self.calls.append(("restart_unit", name))
        refusal = self._refusal(name, "restart")
        if refusal is not None:
            return refusal
        members = self._reverse_closure(name)
        was_active = {m for m in members if self._units[m].active_state in ("active", "activating")}
        self._run_stop_jobs(members)
        results = self._run_start_jobs(self._closure(sorted(was_active | {name}), _PULLED))
        return JobResult(name, "restart", results[name], self._failure_message(name, results[name]))

    def _refusal(self, name: str, job: str) -> JobResult | None:
        loaded = self._load_cached(name)
        return job_refusal(name, job, loaded.load_state, loaded.load_error)

    def _failure_message(self, name: str, result: str) -> str:
        return job_failure_message(name, result, getattr(self._units.get(name), "result", ""))

    def _run_start_jobs(self, members: set[str]) -> dict[str, str]:
        results: dict[str, str] = {}
        for member, waits in self._start_order(members):
            strong = self._deps(member, _STRONG)
            unit = self._unit(member)
            if unit is None:
                results[member] = "invalid"
            elif any(results.get(p, "done") != "done" for p in waits if p in strong):
                results[member] = "dependency"
            else:
                results[member] = unit.start()
        # An unordered strong dependency that failed takes its dependents down, as in the manager.
        for member in sorted(members):
            failed = [d for d in self._deps(member, _STRONG) if results.get(d, "done") != "done"]
            if failed and results[member] == "done":
                self._run_stop_jobs({member})
                results[member] = "dependency"
        return results

    def _run_stop_jobs(self, members: set[str]) -> None:
        """Stop ``members``, each after the members ordered After= it (dependents first)."""
        for member, _ in reversed(self._start_order(members)):
            unit = self._units.get(member)
            if unit is not None:
                unit.stop()
                self._stop_bound_to(unit)

    def _stop_bound_to(self, unit: _FakeUnit) -> None:
        """BindsTo=: a unit that went down takes the active units bound to it down too."""
        if unit.active_state not in ("inactive", "failed"):
            return
        for other_name, other in list(self._units.items()):
            if other.active_state in ("active", "activating") and unit.name in self._deps(
                other_name, ("binds_to",)
            ):
                self._run_stop_jobs(self._reverse_closure(other_name))

    async def kill_unit(self, name: str, signal_number: int) -> None:
        name = normalize_unit_name(name)
        self.calls.append(("kill_unit", name))
        unit = self._units.get(name)
        if unit is None:
            raise NoSuchUnit(name)
        if unit.has_main_process and signal_number not in _HARMLESS_SIGNALS:
            unit.main_exited("killed", signal_number)
            self._stop_bound_to(unit)

    async def reset_failed(self, name: str | None = None) -> None:
        self.calls.append(("reset_failed", name))
        for unit_name, unit in self._units.items():
            if name is None or unit_name == normalize_unit_name(name):
                unit.reset_failed()

    # ------------------------------------------------------------------ queries

    async def unit_status(self, name: str) -> UnitStatus:
        name = normalize_unit_name(name)
        self.calls.append(("unit_status", name))
        return self._status(name)

    def _status(self, name: str) -> UnitStatus:
        loaded = self._load_cached(name)
        unit = self._unit(name)
        if unit is None:
            return UnitStatus(
                name=name,
                load_state=loaded.load_state,
                active_state="inactive",
                sub_state="dead",
                description=name,
                fragment_path=loaded.fragment_path,
                load_error=loaded.load_error,
                unit_file_state=loaded.unit_file_state,
                unit_type=loaded.unit_type,
            )
        # A unit whose file went away keeps its runtime; it still reports "loaded", as the manager does.
        return replace(
            unit.status(),
            load_state=loaded.load_state if loaded.load_state != "not-found" else "loaded",
            fragment_path=loaded.fragment_path,
            dropin_paths=loaded.dropin_paths,
            unit_file_state=loaded.unit_file_state,
            load_error=loaded.load_error,
        )

    async def list_units(self, *, include_inactive: bool = False) -> list[UnitStatus]:
        self.calls.append(("list_units", None))
        statuses = [self._status(name) for name in sorted(self._units)]
        return [s for s in statuses if include_inactive or s.active_state != "inactive"]

    async def unit_file_text(self, name: str) -> str:
        name = normalize_unit_name(name)
        self.calls.append(("unit_file_text", name))
        loaded = self._load_cached(name)
        if not loaded.sources:
            raise NoSuchUnit(name)
        return "\n".join(f"# {path}\n{text.rstrip(chr(10))}\n" for path, text in loaded.sources)

    def unit_files(self) -> list[tuple[str, str]]:
        """(name, state) of every unit file on the search path, like ``systemctl list-unit-files``."""
        names = {
            PurePosixPath(path).name
            for path in (*self._disk.texts, *self._disk.links)
            if str(PurePosixPath(path).parent) in self._disk.dirs() and "." in PurePosixPath(path).name
        }
        return [(n, _load(self._disk, n, self._specifiers).unit_file_state) for n in sorted(names)]

    # ------------------------------------------------------------------ unit files

    async def link_unit_file(self, path: str, *, runtime: bool = True) -> None:
        self.calls.append(("link_unit_file", path))
        source = Path(path).absolute()
        if not source.is_file():
            raise NoSuchUnit(source.name)
        directory = self.layout.run_units if runtime else self.layout.etc_units
        link = str(directory / source.name)
        self._disk.texts.pop(link, None)
        self._disk.links[link] = str(source)
        self._loaded.pop(source.name, None)

    async def unlink_unit_file(self, name: str) -> None:
        self.calls.append(("unlink_unit_file", name))
        for directory in (self.layout.run_units, self.layout.etc_units):
            self._disk.links.pop(str(directory / name), None)
        self._loaded.pop(name, None)

    async def enable_unit(self, name: str, *, runtime: bool = False) -> list[str]:
        """Link the unit into each WantedBy/RequiredBy target's directory; returns what was created."""
        name = normalize_unit_name(name)
        self.calls.append(("enable_unit", name))
        loaded = self._load_cached(name)
        if loaded.config is None or not loaded.fragment_path:
            raise NoSuchUnit(name)
        directory = self.layout.run_units if runtime else self.layout.etc_units
        created = []
        for kind, targets in (("wants", loaded.config.wanted_by), ("requires", loaded.config.required_by)):
            for target in targets:
                link = str(directory / f"{target}.{kind}" / name)
                if link not in self._disk.links:
                    self._disk.links[link] = loaded.fragment_path
                    created.append(f"Created symlink {link} → {loaded.fragment_path}.")
        self._loaded.clear()
        return created

    async def disable_unit(self, name: str) -> list[str]:
        name = normalize_unit_name(name)
        self.calls.append(("disable_unit", name))
        removed = []
        for directory in (str(self.layout.etc_units), str(self.layout.run_units)):
            for kind in ("wants", "requires"):
                pattern = f"{directory}/*.{kind}/{name}"
                for link in sorted(p for p in self._disk.links if fnmatch.fnmatchcase(p, pattern)):
                    if "/" not in link.removeprefix(f"{directory}/")[: -len(name) - 1]:
                        del self._disk.links[link]
                        removed.append(f"Removed {link}.")
        self._loaded.clear()
        return removed

    async def daemon_reload(self) -> None:
        """Re-read every unit file; running units keep running, their next start uses the new file."""
        self.calls.append(("daemon_reload", None))
        self._loaded.clear()
        for name in list(self._units):
            unit = self._units[name]
            loaded = self._load_cached(name)
            if loaded.load_state == "loaded":
                unit.config = loaded.config
            elif unit.active_state in ("inactive", "failed"):
                del self._units[name]

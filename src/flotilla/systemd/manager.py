"""The embedded unit manager: loads units, runs start/stop jobs with their dependencies, answers status.

A start job is a transaction, as in systemd: the unit plus everything it Requires/Wants/BindsTo
(transitively) start together, each waiting for the units it is ordered After; a unit whose strong
dependency failed does not start (result ``dependency``). A stop job also stops the units that
Require/BindsTo/PartOf the stopped one, in reverse order. A unit that stops on its own takes down the units
bound to it (BindsTo). Ordering without a requirement only orders; a requirement without ordering starts
both at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from flotilla.systemd.errors import NoSuchUnit
from flotilla.systemd.journal import Journal
from flotilla.systemd.layout import Layout
from flotilla.systemd.loader import LoadedUnit, load_unit, normalize_unit_name
from flotilla.systemd.procs import ProcessTracker, Reaper
from flotilla.systemd.protocol import JobResult, UnitStatus, job_failure_message, job_refusal
from flotilla.systemd.service import RuntimeContext, ServiceRuntime, now_us
from flotilla.units import SpecifierContext

__all__ = ["Manager"]

_STRONG = ("requires", "binds_to")
_PULLED = ("requires", "wants", "binds_to")


class _PassiveRuntime:
    """A unit with nothing to run (targets, and types this manager does not run): active while started."""

    def __init__(self, name: str, config: Any, ctx: RuntimeContext) -> None:
        self.name, self.config, self.ctx = name, config, ctx
        self.unit_type = name.rsplit(".", 1)[-1]
        self.active_state, self.sub_state, self.result = "inactive", "dead", "success"
        self.timestamps = {"active_enter": 0, "active_exit": 0, "inactive_enter": 0, "inactive_exit": 0}

    def _set(self, active: str, sub: str) -> None:
        stamp = now_us()
        key = "active_enter" if active == "active" else "inactive_enter"
        self.timestamps[key] = stamp
        self.active_state, self.sub_state = active, sub
        self.ctx.on_change(self)

    async def start(self) -> str:
        if self.unit_type not in ("target", "service"):
            self.ctx.log(self.name, f"{self.name}: unit type .{self.unit_type} is not supported here.", 3)
            return "invalid"
        if self.active_state != "active":
            self._set("active", "active")
            self.ctx.log(self.name, f"Reached target {self.config.description or self.name}.")
        return "done"

    async def stop(self) -> str:
        if self.active_state == "active":
            self._set("inactive", "dead")
            self.ctx.log(self.name, f"Stopped target {self.config.description or self.name}.")
        return "done"

    async def wait_inactive(self) -> None:
        return None

    def kill(self, sig: int) -> int:
        return 0

    def reset_failed(self) -> None:
        return None

    def status(self) -> UnitStatus:
        return UnitStatus(
            name=self.name,
            load_state="loaded",
            active_state=self.active_state,
            sub_state=self.sub_state,
            description=self.config.description or self.name,
            active_enter_us=self.timestamps["active_enter"],
            inactive_enter_us=self.timestamps["inactive_enter"],
            unit_type=self.unit_type,
        )


class Manager:
    """One unit manager for one root directory (``flotilla systemd --root DIR`` runs one)."""

    def __init__(
        self,
        root: str | Path,
        *,
        default_env: Mapping[str, str] | None = None,
        hostname: str | None = None,
        use_cgroups: bool = True,
        journal_max_bytes: int = 64 * 2**20,
    ) -> None:
        self.layout = Layout.at(root)
        self.hostname = hostname or socket.gethostname()
        self._default_env = dict(default_env or {})
        self._use_cgroups = use_cgroups
        self._journal_max_bytes = journal_max_bytes
        self._loaded: dict[str, LoadedUnit] = {}
        self._runtimes: dict[str, Any] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._ctx: RuntimeContext | None = None
        self._specifiers: SpecifierContext | None = None
        self.journal: Journal | None = None
        self.reaper = Reaper()

    # ------------------------------------------------------------------ life of the manager

    async def open(self) -> None:
        self.layout.make_dirs()
        boot_id = uuid.uuid4().hex
        machine_id = self.layout.machine_id()
        self.journal = Journal(
            self.layout.journal_dir,
            max_bytes=self._journal_max_bytes,
            hostname=self.hostname,
            boot_id=boot_id,
        )
        self.reaper.install(asyncio.get_running_loop())
        tracker = ProcessTracker(self.layout.instance_tag, use_cgroups=self._use_cgroups)
        self._ctx = RuntimeContext(
            tracker=tracker,
            reaper=self.reaper,
            journal=self.journal,
            notify_dir=self.layout.notify_dir,
            default_env=self._default_env,
            on_change=self._on_change,
        )
        self._specifiers = SpecifierContext(
            unit_name="",
            hostname=self.hostname,
            machine_id=machine_id,
            boot_id=boot_id,
            user=os.environ.get("USER", "root"),
        )

    async def start_default_target(self) -> JobResult:
        """What boot does: start default.target (multi-user.target and what is enabled for it)."""
        return await self.start_unit("default.target")

    async def close(self) -> None:
        """Stop every running unit (dependents first) and release what the manager holds."""
        active = [
            name for name, rt in self._runtimes.items() if rt.active_state not in ("inactive", "failed")
        ]
        if active:
            await self._run_stop_jobs(self._order(set(active), reverse=True))
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
        assert self._ctx is not None
        self._ctx.tracker.close()
        self.reaper.uninstall()
        if self.journal is not None:
            self.journal.close()

    # ------------------------------------------------------------------ loading

    def _load(self, name: str) -> LoadedUnit:
        loaded = self._loaded.get(name)
        if loaded is None:
            assert self._specifiers is not None, "Manager.open() first"
            loaded = load_unit(self.layout, name, self._specifiers)
            self._loaded[name] = loaded
        return loaded

    def _runtime(self, name: str) -> Any | None:
        runtime = self._runtimes.get(name)
        if runtime is not None:
            return runtime
        loaded = self._load(name)
        if loaded.load_state != "loaded":
            return None
        assert self._ctx is not None
        if loaded.unit_type == "service":
            runtime = ServiceRuntime(name, self._ctx, loaded.config)
        else:
            runtime = _PassiveRuntime(name, loaded.config, self._ctx)
        self._runtimes[name] = runtime
        return runtime

    def _deps(self, name: str, kinds: Iterable[str]) -> list[str]:
        loaded = self._load(name)
        if loaded.config is None:
            return []
        return [dep for kind in kinds for dep in getattr(loaded.config, kind, ())]

    # ------------------------------------------------------------------ jobs

    async def start_unit(self, name: str) -> JobResult:
        name = normalize_unit_name(name)
        refusal = self._refusal(name, "start")
        if refusal is not None:
            return refusal
        members = self._closure([name], _PULLED)
        broken = self._unstartable(members)
        if name in broken:
            missing = sorted(
                m for m in members if self._runtime(m) is None and m in self._strong_closure(name)
            )
            loaded = self._load(missing[0]) if missing else None
            what = "not found" if loaded is None or loaded.load_state == "not-found" else "failed to load"
            return JobResult(name, "start", "dependency", f"Unit {missing[0] if missing else name} {what}.")
        # A unit only wanted, whose own requirement cannot load, is left out; the rest starts (systemd).
        results = await self._run_start_jobs(members - broken)
        return JobResult(name, "start", results[name], self._failure_message(name, results[name]))

    async def stop_unit(self, name: str) -> JobResult:
        name = normalize_unit_name(name)
        if name not in self._runtimes and self._load(name).load_state == "not-found":
            return JobResult(name, "stop", "invalid", f"Unit {name} not loaded.")
        members = self._reverse_closure(name)
        await self._run_stop_jobs(self._order(members, reverse=True))
        return JobResult(name, "stop", "done")

    async def restart_unit(self, name: str) -> JobResult:
        name = normalize_unit_name(name)
        refusal = self._refusal(name, "restart")
        if refusal is not None:
            return refusal
        members = self._reverse_closure(name)
        was_active = {m for m in members if self._runtimes[m].active_state in ("active", "activating")} | {
            name
        }
        await self._run_stop_jobs(self._order(members, reverse=True))
        results = await self._run_start_jobs(self._closure(sorted(was_active), _PULLED))
        return JobResult(name, "restart", results[name], self._failure_message(name, results[name]))

    def _refusal(self, name: str, job: str) -> JobResult | None:
        loaded = self._load(name)
        return job_refusal(name, job, loaded.load_state, loaded.load_error)

    def _failure_message(self, name: str, result: str) -> str:
        return job_failure_message(name, result, getattr(self._runtimes.get(name), "result", ""))

    def _unstartable(self, members: set[str]) -> set[str]:
        """Members that cannot load, and every member that Requires/BindsTo one of them (transitively)."""
        broken = {m for m in members if self._runtime(m) is None}
        changed = True
        while changed:
            changed = False
            for member in members - broken:
                if set(self._deps(member, _STRONG)) & broken or any(
                    self._runtime(d) is None for d in self._deps(member, _STRONG)
                ):
                    broken.add(member)
                    changed = True
        return broken

    def _closure(self, roots: Iterable[str], kinds: Iterable[str]) -> set[str]:
        kinds = tuple(kinds)
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(self._deps(name, kinds))
        return seen

    def _strong_closure(self, name: str) -> set[str]:
        return self._closure([name], _STRONG)

    def _reverse_closure(self, name: str) -> set[str]:
        """``name`` and every loaded unit that Requires/BindsTo/PartOf it, transitively."""
        members = {name}
        changed = True
        while changed:
            changed = False
            for other in list(self._runtimes):
                if other not in members and set(self._deps(other, (*_STRONG, "part_of"))) & members:
                    members.add(other)
                    changed = True
        return {m for m in members if m in self._runtimes or self._runtime(m) is not None}

    def _after(self, name: str, members: set[str]) -> set[str]:
        """The members ``name`` must wait for when starting: its After= plus those listing it in Before=."""
        after = set(self._deps(name, ("after",))) & members
        for other in members:
            if name in self._deps(other, ("before",)):
                after.add(other)
        after.discard(name)
        return after

    def _order(self, members: set[str], *, reverse: bool = False) -> list[tuple[str, set[str]]]:
        """Each member with the members it waits for (start: its predecessors; stop: its successors)."""
        waits = {m: self._after(m, members) for m in members}
        if reverse:
            flipped: dict[str, set[str]] = {m: set() for m in members}
            for member, predecessors in waits.items():
                for predecessor in predecessors:
                    flipped[predecessor].add(member)
            waits = flipped
        return sorted(waits.items())

    async def _run_start_jobs(self, members: set[str]) -> dict[str, str]:
        jobs: dict[str, asyncio.Future[str]] = {
            m: asyncio.get_running_loop().create_future() for m in members
        }
        results: dict[str, str] = {}
        order = self._order(members)
        with_cycles = _break_cycles(dict(order))

        async def one(member: str, waits: set[str]) -> None:
            outcome = "done"
            for predecessor in waits:
                result = await jobs[predecessor]
                if result != "done" and predecessor in self._deps(member, _STRONG):
                    outcome = "dependency"
            runtime = self._runtime(member)
            if runtime is None:
                outcome = "invalid"
            elif outcome == "done":
                outcome = await runtime.start()
            results[member] = outcome
            jobs[member].set_result(outcome)

        async with asyncio.TaskGroup() as group:
            for member, waits in with_cycles.items():
                group.create_task(one(member, waits))
        # A strong dependency started concurrently (no ordering) that failed takes its dependents down.
        for member in members:
            failed = [d for d in self._deps(member, _STRONG) if results.get(d, "done") != "done"]
            if failed and results[member] == "done":
                await self._run_stop_jobs([(member, set())])
                results[member] = "dependency"
        return results

    async def _run_stop_jobs(self, order: list[tuple[str, set[str]]]) -> None:
        jobs = {m: asyncio.get_running_loop().create_future() for m, _ in order}
        waits_for = _break_cycles(dict(order))

        async def one(member: str, waits: set[str]) -> None:
            for successor in waits:
                await jobs[successor]
            runtime = self._runtimes.get(member)
            if runtime is not None:
                await runtime.stop()
            jobs[member].set_result("done")

        async with asyncio.TaskGroup() as group:
            for member, waits in waits_for.items():
                group.create_task(one(member, waits))

    def _on_change(self, runtime: Any) -> None:
        """BindsTo=: a unit that went down takes the units bound to it down too."""
        if runtime.active_state not in ("inactive", "failed"):
            return
        for other_name, other in self._runtimes.items():
            if other.active_state in ("active", "activating") and runtime.name in self._deps(
                other_name, ("binds_to",)
            ):
                task = asyncio.get_running_loop().create_task(self.stop_unit(other_name))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def kill_unit(self, name: str, signal_number: int) -> None:
        runtime = self._runtime(normalize_unit_name(name))
        if runtime is None:
            raise NoSuchUnit(normalize_unit_name(name))
        runtime.kill(signal_number)

    async def reset_failed(self, name: str | None = None) -> None:
        for unit_name, runtime in self._runtimes.items():
            if name is None or unit_name == normalize_unit_name(name):
                runtime.reset_failed()

    # ------------------------------------------------------------------ queries

    async def unit_status(self, name: str) -> UnitStatus:
        name = normalize_unit_name(name)
        loaded = self._load(name)
        runtime = self._runtimes.get(name) or self._runtime(name)
        if runtime is None:
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
        status = runtime.status()
        return _with_load_info(status, loaded)

    async def list_units(self, *, include_inactive: bool = False) -> list[UnitStatus]:
        statuses = []
        for name in sorted(self._runtimes):
            status = await self.unit_status(name)
            if include_inactive or status.active_state != "inactive":
                statuses.append(status)
        return statuses

    async def unit_file_text(self, name: str) -> str:
        name = normalize_unit_name(name)
        loaded = self._load(name)
        if not loaded.sources:
            raise NoSuchUnit(name)
        return "\n".join(f"# {path}\n{text.rstrip(chr(10))}\n" for path, text in loaded.sources)

    def unit_files(self) -> list[tuple[str, str]]:
        """(name, state) of every unit file on the search path, like ``systemctl list-unit-files``."""
        names: set[str] = set()
        for directory in self.layout.unit_dirs:
            if directory.is_dir():
                names.update(p.name for p in directory.iterdir() if not p.is_dir() and "." in p.name)
        return [
            (n, load_unit(self.layout, n, self._specifiers_or_default()).unit_file_state)
            for n in sorted(names)
        ]

    def _specifiers_or_default(self) -> SpecifierContext:
        return self._specifiers or SpecifierContext(unit_name="")

    # ------------------------------------------------------------------ unit files

    async def link_unit_file(self, path: str, *, runtime: bool = True) -> None:
        source = Path(path).absolute()
        if not source.is_file():
            raise NoSuchUnit(source.name)
        directory = self.layout.run_units if runtime else self.layout.etc_units
        link = directory / source.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
        self._loaded.pop(source.name, None)

    async def unlink_unit_file(self, name: str) -> None:
        name = normalize_unit_name(name)
        for directory in (self.layout.run_units, self.layout.etc_units):
            link = directory / name
            if link.is_symlink():
                link.unlink()
        self._loaded.pop(name, None)

    async def enable_unit(self, name: str, *, runtime: bool = False) -> list[str]:
        """Symlink the unit into each WantedBy/RequiredBy target's directory; returns what was created."""
        name = normalize_unit_name(name)
        loaded = self._load(name)
        if loaded.config is None or not loaded.fragment_path:
            raise NoSuchUnit(name)
        created = []
        directory = self.layout.run_units if runtime else self.layout.etc_units
        for kind, targets in (("wants", loaded.config.wanted_by), ("requires", loaded.config.required_by)):
            for target in targets:
                folder = directory / f"{target}.{kind}"
                folder.mkdir(parents=True, exist_ok=True)
                link = folder / name
                if not link.is_symlink():
                    link.symlink_to(loaded.fragment_path)
                    created.append(f"Created symlink {link} → {loaded.fragment_path}.")
        self._forget_loaded()
        return created

    async def disable_unit(self, name: str) -> list[str]:
        name = normalize_unit_name(name)
        removed = []
        for directory in (self.layout.etc_units, self.layout.run_units):
            for link in sorted(directory.glob(f"*.wants/{name}")) + sorted(
                directory.glob(f"*.requires/{name}")
            ):
                link.unlink()
                removed.append(f"Removed {link}.")
        self._forget_loaded()
        return removed

    async def daemon_reload(self) -> None:
        """Re-read every unit file; running units keep running, their next start uses the new file."""
        self._forget_loaded()
        for name in list(self._runtimes):
            runtime = self._runtimes[name]
            loaded = self._load(name)
            if loaded.load_state == "loaded":
                runtime.config = loaded.config
            elif runtime.active_state in ("inactive", "failed"):
                del self._runtimes[name]

    def _forget_loaded(self) -> None:
        self._loaded.clear()


def _with_load_info(status: UnitStatus, loaded: LoadedUnit) -> UnitStatus:
    return replace(
        status,
        load_state=loaded.load_state if loaded.load_state != "not-found" else status.load_state,
        fragment_path=loaded.fragment_path,
        dropin_paths=loaded.dropin_paths,
        unit_file_state=loaded.unit_file_state,
        load_error=loaded.load_error,
    )


def _break_cycles(waits: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop ordering edges that close a cycle (systemd drops a job to break an ordering cycle; we drop
    the edge, so no job waits for itself)."""
    result = {m: set() for m in waits}
    state: dict[str, int] = {}

    def visit(node: str) -> None:
        state[node] = 1
        for predecessor in sorted(waits.get(node, ())):
            if state.get(predecessor) == 1:
                continue  # the edge that closes a cycle
            result[node].add(predecessor)
            if predecessor not in state:
                visit(predecessor)
        state[node] = 2

    for node in sorted(waits):
        if node not in state:
            visit(node)
    return result

"""fleet's agent: one per machine, it makes the local unit manager run what the registry assigns here.

Presence is a machine key under a lease the agent keeps alive. Each reconcile reads this machine's
assignments (``assignments/<machine>/``, written by the engine: its scheduled units and the global units
it qualifies for — never the whole registry) and the local manager's view of the units fleet loaded here
(the unit files in ``units_dir``), plans with the pure ``plan_agent``, applies the tasks through the
``UnitManager`` Protocol, and publishes each unit's LOAD/ACTIVE/SUB under the lease (only what changed).
It runs when its assignments change and every ``reconcile_interval_s`` (unit states change without
registry events).

What it does better than fleet: a store blip shorter than the lease TTL stops nothing (fleet #1145:
nothing is stopped on an error, only when the lease is known lost); a restarted agent finds its units
running with the right hash and leaves them alone (#723, #1621), and a stopping agent keeps its
machine present for ``restart_grace_s`` so that a restart slower than one TTL moves nothing; and when
its lease is lost the agent stops its singleton units itself, because the engine is about to run them
elsewhere — so a unit runs twice for at most about one TTL after a partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from flotilla.client import ClientError
from flotilla.fleet.agent_plan import AgentPlan, AgentTask, plan_agent
from flotilla.fleet.loops import reconcile_until, sleep_or, until_first
from flotilla.fleet.model import Machine, Unit, UnitState
from flotilla.fleet.registry import Registry
from flotilla.systemd import JobResult, UnitManager
from flotilla.units import UnitError, parse_unit_text_fleet, unit_hash

__all__ = ["Agent"]

log = logging.getLogger("flotilla.fleet.agent")

_REREAD_PASSES = 10


class Agent:
    def __init__(
        self,
        registry: Registry,
        manager: UnitManager,
        machine: Machine,
        units_dir: Path,
        *,
        ttl_s: int = 2,
        reconcile_interval_s: float = 1.0,
        restart_grace_s: int = 10,
    ) -> None:
        self.registry = registry
        self.manager = manager
        self.machine = machine
        self.units_dir = units_dir
        self.ttl_s = ttl_s
        self.reconcile_interval_s = reconcile_interval_s
        self.restart_grace_s = restart_grace_s
        self.registered = asyncio.Event()
        self._started: set[str] = set()
        self._published: dict[str, tuple[UnitState, str]] = {}
        self._hashes: dict[str, tuple[float, int, str]] = {}
        self._lease_id = 0
        self._globals: set[str] = set()  # names of the global units among the last assignments read
        # The last assignments read and when; read again when the watch says they changed, and at least
        # every _REREAD_INTERVALS passes in case a watch was interrupted and resumed past a change.
        self._desired: dict[str, tuple[Unit, str]] | None = None
        self._passes_since_read = 0
        self._assignment_events = 0  # changes the watch reported; a read racing one is not kept

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        client = self.registry.client
        self.units_dir.mkdir(parents=True, exist_ok=True)
        while not stop.is_set():
            try:
                lease = await client.lease_grant(self.ttl_s)
                await self.registry.register_machine(self.machine, lease.id)
                self._lease_id = lease.id
                self._published.clear()  # the new lease holds none of our states yet
                self._desired = None
                self.registered.set()
                log.info(
                    "agent %s: registered (lease %x, ttl %ds)", self.machine.short_id, lease.id, self.ttl_s
                )
                await self._hold(lease.id, stop)
            except (TimeoutError, ClientError) as error:
                log.warning("agent %s: store unavailable: %s", self.machine.short_id, error)
                await sleep_or(stop, min(1.0, self.ttl_s / 2))
        if self.registered.is_set():
            await self._hand_over()

    async def _hold(self, lease_id: int, stop: asyncio.Event) -> None:
        """Reconcile while the lease lives. A keep-alive that could not refresh in time is not proof the
        lease is gone (a store election can outlast it): ask the store, and stop the singleton units only
        when the lease really expired or the store cannot say."""
        client = self.registry.client
        while not stop.is_set():
            async with client.keep_alive(lease_id, ttl_s=self.ttl_s) as keepalive:
                await until_first(stop.wait, keepalive.lost.wait, lambda: self._reconcile_loop(stop))
            if stop.is_set() or not keepalive.lost.is_set():
                return
            if await self._lease_alive(lease_id):
                log.warning("agent %s: keep-alive interrupted (%s) but the lease lives: carrying on",
                            self.machine.short_id, keepalive.reason)  # fmt: skip
                continue
            self.registered.clear()
            log.warning("agent %s: lease lost (%s): stopping singleton units",
                        self.machine.short_id, keepalive.reason)  # fmt: skip
            await self._stop_singletons()
            return

    async def _lease_alive(self, lease_id: int) -> bool:
        try:
            info = await self.registry.client.lease_time_to_live(lease_id, timeout_s=max(1.0, self.ttl_s / 2))
        except (TimeoutError, ClientError):
            return False
        return info.ttl_s > 0

    async def _hand_over(self) -> None:
        """fleetd is stopping while this machine is registered, most likely to be started again (an
        upgrade, a new configuration). Its units keep running in the unit manager, so keep the machine
        and its unit states present for ``restart_grace_s`` under a fresh lease: a fleetd back within
        that time adopts them untouched, even when its start takes longer than one TTL (fleet purged and
        restarted every unit, #723, #1621). If none comes back the lease lapses and the engine places the
        units elsewhere, as for a dead machine."""
        self.registered.clear()
        try:
            async with asyncio.timeout(min(self.ttl_s, 2.0)):
                lease = await self.registry.client.lease_grant(self.restart_grace_s)
                await self.registry.register_machine(self.machine, lease.id)
                for state, fleet_state in self._published.values():
                    await self.registry.publish_state(state, self.machine, fleet_state, lease.id)
        except (TimeoutError, ClientError) as error:
            log.warning("agent %s: could not hand over for a restart: %s", self.machine.short_id, error)
            return
        log.info("agent %s: stopping; presence kept for %ds for a restart", self.machine.short_id,
                 self.restart_grace_s)  # fmt: skip

    async def _reconcile_loop(self, stop: asyncio.Event) -> None:
        await reconcile_until(
            stop, self.reconcile, changes=(self._assignment_changes,),
            interval_s=self.reconcile_interval_s, log=log, who=f"agent {self.machine.short_id}",
        )  # fmt: skip

    # ------------------------------------------------------------------ one reconcile

    async def _assignment_changes(self) -> AsyncIterator[int]:
        async for revision in self.registry.changed(f"assignments/{self.machine.id}"):
            self._assignment_events += 1
            self._desired = None
            yield revision

    async def desired(self) -> dict[str, tuple[Unit, str]]:
        """What this machine should run: its assignments (its scheduled units and the global units it
        qualifies for, as the engine wrote them), each with its desired state. The periodic passes (for
        local state changes) reuse the last read unless the assignments changed since: a hundred agents
        must not each read the store every second for nothing."""
        self._passes_since_read += 1
        if self._desired is not None and self._passes_since_read < _REREAD_PASSES:
            return self._desired
        self._desired, self._passes_since_read = None, 0
        events_before = self._assignment_events
        assigned = await self.registry.assigned(self.machine.id)
        for name, error in assigned.errors.items():
            log.warning("agent %s: %s: %s", self.machine.short_id, name, error)
        self._globals = {name for name, record in assigned.records.items() if record.is_global}
        desired = {name: (unit, unit.desired_state) for name, unit in assigned.units.items()}
        if not assigned.errors and events_before == self._assignment_events:
            self._desired = (
                desired  # else read again next pass: a record was unreadable, or changed meanwhile
            )
        return desired

    async def current(self) -> dict[str, UnitState | None]:
        names = (
            sorted(p.name for p in self.units_dir.iterdir() if p.is_file()) if self.units_dir.exists() else []
        )
        statuses = await asyncio.gather(*(self.manager.unit_status(name) for name in names))
        current: dict[str, UnitState | None] = {}
        for name, status in zip(names, statuses, strict=True):
            current[name] = UnitState(
                name, self.machine.id, status.load_state, status.active_state, status.sub_state,
                self._file_hash(name),
            )  # fmt: skip
        return current

    def _file_hash(self, name: str) -> str:
        path = self.units_dir / name
        try:
            stat = path.stat()
            cached = self._hashes.get(name)
            if cached and cached[:2] == (stat.st_mtime, stat.st_size):
                return cached[2]
            digest = unit_hash(parse_unit_text_fleet(path.read_text(), str(path)))
        except (OSError, UnitError):
            return ""
        self._hashes[name] = (stat.st_mtime, stat.st_size, digest)
        return digest

    async def reconcile(self) -> AgentPlan:
        desired = await self.desired()
        plan = plan_agent(self.machine.id, desired, await self.current(), self._started)
        if plan.tasks:
            await self._apply(plan)
            log.info("%s", plan.summary())
        await self._publish(desired)
        return plan

    async def _apply(self, plan: AgentPlan) -> None:
        by_kind: dict[str, list[AgentTask]] = {}
        for task in plan.tasks:
            by_kind.setdefault(task.kind, []).append(task)
        await asyncio.gather(*(self._stop(t.unit_name) for t in by_kind.get("stop", [])))
        for task in by_kind.get("unload", []):
            await self._unload(task.unit_name)
        for task in by_kind.get("load", []):
            await self._load(task)
        if by_kind.get("reload"):
            await self.manager.daemon_reload()
        await asyncio.gather(*(self._start(t.unit_name) for t in by_kind.get("start", [])))

    async def _stop(self, name: str) -> None:
        await self.manager.stop_unit(name)
        self._started.discard(name)

    async def _unload(self, name: str) -> None:
        await self.manager.unlink_unit_file(name)
        with contextlib.suppress(FileNotFoundError):
            (self.units_dir / name).unlink()
        self._hashes.pop(name, None)
        self._started.discard(name)
        if self._published.pop(name, None) is not None:
            await self.registry.remove_state(name, self.machine.id)

    async def _load(self, task: AgentTask) -> None:
        assert task.unit is not None
        path = self.units_dir / task.unit_name
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(task.unit.text)
        tmp.replace(path)  # never a half-written unit file
        await self.manager.link_unit_file(str(path), runtime=True)

    async def _start(self, name: str) -> JobResult:
        result = await self.manager.start_unit(name)
        if result.result != "invalid":
            self._started.add(name)  # it ran; whether it runs again is its Restart= policy's call
        if not result.ok:
            log.warning(
                "agent %s: start of %s: %s %s", self.machine.short_id, name, result.result, result.message
            )
        return result

    async def _publish(self, desired: dict[str, tuple[Unit, str]]) -> None:
        current = await self.current()
        changed: dict[str, tuple[UnitState, str]] = {}
        for name, (_unit, state) in desired.items():
            now = current.get(name)
            if now is None or state == "inactive":
                continue
            fleet_state = "launched" if state == "launched" and now.active_state != "inactive" else "loaded"
            if self._published.get(name) != (now, fleet_state):
                changed[name] = (now, fleet_state)
        if changed:
            await self.registry.publish_states(changed.values(), self.machine, self._lease_id)
            self._published.update(changed)
        gone = [name for name in self._published if name not in desired]
        if gone:
            await self.registry.remove_states(gone, self.machine.id)
            for name in gone:
                del self._published[name]

    async def _stop_singletons(self) -> None:
        """The lease is gone: the engine will place this machine's units elsewhere. Stop the non-global
        ones here so none runs twice for longer than about one TTL. Which are global comes from the last
        assignments read, or else from the unit file itself (the store may be unreachable right now)."""
        current = await self.current()
        names = [n for n, s in current.items() if s is not None and s.active_state != "inactive"]
        globals_ = set(self._globals)
        for name in names:
            if name not in globals_:
                with contextlib.suppress(OSError, UnitError):
                    if Unit.from_text(name, (self.units_dir / name).read_text()).is_global:
                        globals_.add(name)
        await asyncio.gather(*(self._stop(n) for n in names if n not in globals_))
        self._published.clear()

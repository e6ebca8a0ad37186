"""The agent's pure function: what one machine must do to its local unit manager so that the units it
runs match what the registry wants (fleet's agent/reconcile.go ``calculateTasksForUnits``).

The current state comes from the unit manager itself (systemd's LOAD/ACTIVE states and the hash of the
unit file on disk), not from memory of what this agent did. So a restarted agent that finds a unit
active with the right hash leaves it alone; fleet kept that memory in a cache that died with the agent
and restarted every unit (fleet #723, #1621).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from .model import DESIRED_STATES, Unit, UnitState

TASK_KINDS = ("stop", "unload", "load", "reload", "start")
# systemd ACTIVE states in which the unit's processes are up or on their way up (or down): starting it
# again would be wrong, and stopping it is needed before it is removed or rewritten.
RUNNING_ACTIVE_STATES = frozenset({"active", "activating", "reloading", "deactivating"})
# LOAD states that mean the unit manager has no file for the unit.
ABSENT_LOAD_STATES = frozenset({"", "not-found", "stub"})


@dataclass(frozen=True)
class AgentTask:
    """One step for the executor. ``load`` writes ``unit.text`` to the runtime unit directory and links
    it (enabling it when it has an [Install] section, as fleet does); ``unload`` removes the file;
    ``reload`` is systemd's daemon-reload and has no unit; ``start``/``stop`` act in "replace" mode."""

    kind: str
    unit_name: str
    reason: str
    unit: Unit | None = None


@dataclass(frozen=True)
class AgentPlan:
    """The tasks for ``machine_id``, in the order they must run: every stop, then every unload, every
    load, one reload if any unit file was written or removed, then every start (each group by unit
    name). Stopping first means a unit is never removed or rewritten while it runs; the reload before
    the starts means systemd starts the new file. If a task fails the executor should stop there and let
    the next reconcile recompute the plan from the new current state."""

    machine_id: str
    tasks: tuple[AgentTask, ...] = ()

    def summary(self) -> str:
        """One line for the agent's log, e.g. ``agent 113f16a7: stop 1, unload 1, load 2, start 2``."""
        counts = {kind: sum(1 for t in self.tasks if t.kind == kind) for kind in TASK_KINDS}
        parts = [f"{kind} {count}" for kind, count in counts.items() if count and kind != "reload"]
        return f"agent {self.machine_id[:8]}: {', '.join(parts) if parts else 'nothing to do'}"

    def units(self, kind: str) -> tuple[str, ...]:
        """The unit names of the tasks of ``kind``, in plan order."""
        return tuple(t.unit_name for t in self.tasks if t.kind == kind)


def plan_agent(
    machine_id: str,
    desired: Mapping[str, tuple[Unit, str]],
    current: Mapping[str, UnitState | None],
    started: Collection[str] = (),
) -> AgentPlan:
    """The tasks that take ``current`` to ``desired`` on ``machine_id``.

    ``desired`` maps a unit name to the unit and the state it should be in here (``loaded`` or
    ``launched``; ``inactive`` or a missing name means it must not be here). ``current`` maps the names
    of the fleet units the local unit manager knows to their state (None: not loaded). ``started``
    names the units this agent process has started since it began: such a unit found inactive or
    failed has run and ended, and whether it runs again is its own ``Restart=`` policy's call, as in
    fleet (#1103); any other inactive unit desired ``launched`` is started. The caller adds a name to
    ``started`` when its start task succeeds and drops it on stop or unload.
    """
    stops: list[AgentTask] = []
    unloads: list[AgentTask] = []
    loads: list[AgentTask] = []
    starts: list[AgentTask] = []
    for name in sorted(desired.keys() | current.keys()):
        unit, state = desired.get(name, (None, "inactive"))
        if state not in DESIRED_STATES:
            raise ValueError(f"plan_agent: desired state {state!r} of {name} is not one of {DESIRED_STATES}")
        now = current.get(name)
        if now is not None and now.machine_id not in ("", machine_id):
            raise ValueError(f"plan_agent for machine {machine_id}: state of {name} is from {now.machine_id}")
        loaded = now is not None and now.load_state not in ABSENT_LOAD_STATES
        running = loaded and now is not None and now.active_state in RUNNING_ACTIVE_STATES
        if unit is None or state == "inactive":
            if running:
                stops.append(AgentTask("stop", name, "unit is not scheduled here"))
            if loaded:
                unloads.append(AgentTask("unload", name, "unit is loaded but not scheduled here"))
            continue
        changed = loaded and now is not None and now.hash != unit.hash
        if changed and running:
            stops.append(AgentTask("stop", name, "unit file changed; stopping the old version"))
        elif running and state == "loaded":
            stops.append(AgentTask("stop", name, "unit is launched but its desired state is loaded"))
        if not loaded:
            loads.append(AgentTask("load", name, "unit is scheduled here but not loaded", unit))
        elif changed:
            old = now.hash[:7] if now is not None and now.hash else "unknown"
            loads.append(AgentTask("load", name, f"unit hash changed from {old} to {unit.hash[:7]}", unit))
        if state == "launched" and (not loaded or changed or (not running and name not in started)):
            starts.append(AgentTask("start", name, "unit is loaded but its desired state is launched"))
    reload = [AgentTask("reload", "", "unit files changed")] if loads or unloads else []
    return AgentPlan(machine_id, tuple(stops + unloads + loads + reload + starts))

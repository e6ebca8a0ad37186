"""What each machine should run, as the engine leader publishes it — ours, beside fleet's own layout:

    assignments/<machine>/<unit>   {"UnitHash": ..., "TargetState": "loaded"|"launched", "Global": bool}

In fleet every agent read the whole registry to find its units and was woken by every change in it, so
each write cost O(machines × units) reads: fleet's own ceiling was 100 machines and 1,000 units. Here the
engine leader, which must read everything anyway, also writes down per machine what that machine runs —
its scheduled units and the global units it qualifies for, with their hash and desired state — and an
agent reads and watches only its own directory. fleet's keys (``job/<name>/target`` and the rest) stay the
source of truth: assignments are derived from them, and every engine pass repairs any difference.

Pure: a snapshot, the plan made from it and the assignments read with it go in; the writes come out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from .model import ClusterSnapshot
from .planner import SchedulePlan

__all__ = ["Assignment", "AssignmentPlan", "assignments_after", "plan_assignments"]


@dataclass(frozen=True)
class Assignment:
    """Machine ``machine_id`` should have ``unit`` (body ``unit_hash``) in ``desired_state``."""

    unit: str
    machine_id: str
    unit_hash: str
    desired_state: str
    is_global: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.machine_id, self.unit)

    def to_json(self) -> str:
        body = {"UnitHash": self.unit_hash, "TargetState": self.desired_state, "Global": self.is_global}
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, machine_id: str, unit: str, text: str | bytes) -> Assignment | None:
        """The record at ``assignments/<machine_id>/<unit>``, or None when it is not one."""
        try:
            body = json.loads(text)
        except (ValueError, TypeError):
            return None
        if not isinstance(body, dict) or not isinstance(body.get("UnitHash"), str):
            return None
        state = body.get("TargetState")
        if state not in ("loaded", "launched"):
            return None
        return cls(unit, machine_id, body["UnitHash"], state, bool(body.get("Global")))


@dataclass(frozen=True)
class AssignmentPlan:
    """The assignment writes of one engine pass, besides the schedule plan's own.

    ``placed`` holds the assignment of every placement of the plan, in the plan's order (written in the
    same transaction as the target); ``put`` the assignments that are new or changed otherwise (a new
    desired state or body, a global unit a machine now qualifies for, a target written by someone else);
    ``delete`` the (machine, unit) pairs no longer wanted that no unscheduling removes already."""

    placed: tuple[Assignment, ...] = ()
    put: tuple[Assignment, ...] = ()
    delete: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.placed or self.put or self.delete)


def assignments_after(cluster: ClusterSnapshot, plan: SchedulePlan) -> dict[tuple[str, str], Assignment]:
    """Every (machine, unit) assignment once ``plan`` is written: each targeted unit on its target, each
    global unit on the machines the plan admits it to."""
    units = {unit.name: unit for unit in cluster.units}
    wanted: dict[tuple[str, str], Assignment] = {}
    for name, machine_id in plan.apply(cluster.targets).items():
        unit = units.get(name)
        if unit is None or unit.is_global or unit.is_template or unit.desired_state == "inactive":
            continue  # the planner unschedules these; nothing to run
        wanted[(machine_id, name)] = Assignment(name, machine_id, unit.hash, unit.desired_state)
    for machine_id, names in plan.globals.items():
        for name in names:
            unit = units[name]
            wanted[(machine_id, name)] = Assignment(name, machine_id, unit.hash, unit.desired_state, True)
    return wanted


def plan_assignments(
    cluster: ClusterSnapshot, plan: SchedulePlan, current: Mapping[tuple[str, str], Assignment | None]
) -> AssignmentPlan:
    """The writes that turn ``current`` (read with ``cluster``; None for a record that could not be read)
    into ``assignments_after(cluster, plan)``."""
    wanted = assignments_after(cluster, plan)
    placed = tuple(wanted[(p.machine_id, p.unit)] for p in plan.schedule)
    placed_keys = {a.key for a in placed}
    unscheduled = {(u.machine_id, u.unit) for u in plan.unschedule}
    put = tuple(
        assignment
        for key, assignment in sorted(wanted.items())
        if key not in placed_keys and current.get(key) != assignment
    )
    delete = tuple(key for key in sorted(current) if key not in wanted and key not in unscheduled)
    return AssignmentPlan(placed, put, delete)

"""fleet: the cluster scheduler. The pure cores live here — the model, the engine's planner and the
agent's planner; the registry, engine and agent loops build on them."""

from .agent_plan import AgentPlan, AgentTask, plan_agent
from .model import ClusterSnapshot, FrozenMapping, Machine, Unit, UnitState
from .planner import Placement, SchedulePlan, Unscheduling, global_units_for, plan_schedule

__all__ = [
    "AgentPlan",
    "AgentTask",
    "ClusterSnapshot",
    "FrozenMapping",
    "Machine",
    "Placement",
    "SchedulePlan",
    "Unit",
    "UnitState",
    "Unscheduling",
    "global_units_for",
    "plan_agent",
    "plan_schedule",
]

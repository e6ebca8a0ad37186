"""fleet: the cluster scheduler. The pure cores — the model, the engine's planner and the agent's
planner — and the loops built on them: the registry in the store, the engine, the agent, fleetd's config."""

from .agent import Agent
from .agent_plan import AgentPlan, AgentTask, plan_agent
from .api import ApiServer, create_app, serve_api
from .config import ConfigError, FleetConfig, load_config
from .engine import Engine
from .model import ClusterSnapshot, FrozenMapping, Machine, Unit, UnitState
from .planner import Placement, SchedulePlan, Unscheduling, global_units_for, plan_schedule
from .registry import Registry, RegistrySnapshot, StateRecord

__all__ = [
    "Agent",
    "AgentPlan",
    "AgentTask",
    "ApiServer",
    "ClusterSnapshot",
    "ConfigError",
    "Engine",
    "FleetConfig",
    "FrozenMapping",
    "Machine",
    "Placement",
    "Registry",
    "RegistrySnapshot",
    "SchedulePlan",
    "StateRecord",
    "Unit",
    "UnitState",
    "Unscheduling",
    "create_app",
    "global_units_for",
    "load_config",
    "plan_agent",
    "plan_schedule",
    "serve_api",
]

"""The agent's planner against fleet's agent/reconcile.go ``calculateTasksForUnit`` and issue 7 ("restarting
an agent does not restart its healthy units"): the current state is what the unit manager reports, so
an agent that starts again finds its running units and leaves them alone."""

from __future__ import annotations

import pytest

from flotilla.fleet import AgentPlan, AgentTask, Unit, UnitState, plan_agent

M = "113f16a7" + "0" * 24
TEXT = "[Service]\nExecStart=/bin/sleep 1000\n"
WEB = Unit.from_text("web.service", TEXT)
WEB_V2 = Unit.from_text("web.service", TEXT.replace("1000", "2000"))


def state(
    active: str = "active", load: str = "loaded", unit: Unit = WEB, name: str = "web.service"
) -> UnitState:
    sub = {"active": "running", "activating": "start", "failed": "failed"}.get(active, "dead")
    return UnitState(name, M, load, active, sub, unit.hash)


def kinds(plan: AgentPlan) -> list[str]:
    return [f"{t.kind} {t.unit_name}".strip() for t in plan.tasks]


LOAD = "load web.service"
START = "start web.service"
STOP = "stop web.service"
UNLOAD = "unload web.service"


@pytest.mark.parametrize(
    "desired, current, started, expected",
    [
        # reconcile.go: scheduled but unloaded -> load, and start right after when launched
        ("launched", None, (), [LOAD, "reload", START]),
        ("loaded", None, (), [LOAD, "reload"]),
        ("launched", state(load="not-found", active="inactive"), (), [LOAD, "reload", START]),
        # issue 7: a restarted agent finds its healthy unit running with the right hash: no task at all
        ("launched", state("active"), (), []),
        ("launched", state("activating"), (), []),
        ("launched", state("reloading"), (), []),
        ("launched", state("deactivating"), (), []),
        # loaded but not started (fleetctl load, then start)
        ("launched", state("inactive"), (), [START]),
        # fleet #1103: once this agent started it, what happens after it exits is Restart='s business
        ("launched", state("inactive"), ("web.service",), []),
        ("launched", state("failed"), ("web.service",), []),
        ("launched", state("failed"), (), [START]),
        # reconcile.go: launched but desired loaded -> stop (fleetctl stop)
        ("loaded", state("active"), (), [STOP]),
        ("loaded", state("inactive"), (), []),
        ("loaded", state("failed"), (), []),
        # reconcile.go: hash differs -> the new file replaces the old one, stopped first if it runs
        ("launched", state("active", unit=WEB_V2), (), [STOP, LOAD, "reload", START]),
        ("launched", state("inactive", unit=WEB_V2), ("web.service",), [LOAD, "reload", START]),
        ("loaded", state("active", unit=WEB_V2), (), [STOP, LOAD, "reload"]),
        ("loaded", state("inactive", unit=WEB_V2), (), [LOAD, "reload"]),
        # reconcile.go: loaded but not scheduled here -> unload (stopping it first when it runs)
        ("inactive", state("active"), (), [STOP, UNLOAD, "reload"]),
        ("inactive", state("inactive"), (), [UNLOAD, "reload"]),
        ("inactive", state("failed"), (), [UNLOAD, "reload"]),
        ("inactive", None, (), []),
        (None, state("active"), (), [STOP, UNLOAD, "reload"]),
        (None, state("inactive", load="not-found"), (), []),
    ],
)
def test_one_unit(desired, current, started, expected):
    desired_map = {} if desired is None else {"web.service": (WEB, desired)}
    plan = plan_agent(M, desired_map, {"web.service": current}, started)
    assert kinds(plan) == expected


def test_load_carries_the_unit_to_write_and_says_why():
    plan = plan_agent(M, {"web.service": (WEB, "launched")}, {"web.service": state(unit=WEB_V2)})
    load = next(t for t in plan.tasks if t.kind == "load")
    assert load.unit == WEB
    assert load.reason == f"unit hash changed from {WEB_V2.hash[:7]} to {WEB.hash[:7]}"
    assert plan.tasks[-1] == AgentTask(
        "start", "web.service", "unit is loaded but its desired state is launched"
    )


def test_an_unknown_hash_counts_as_changed():
    # The executor must report the hash of the file on disk; without one the file is rewritten.
    current = UnitState("web.service", M, "loaded", "inactive", "dead", "")
    plan = plan_agent(M, {"web.service": (WEB, "loaded")}, {"web.service": current})
    assert kinds(plan) == [LOAD, "reload"] and "from unknown" in plan.tasks[0].reason


def test_tasks_run_in_the_written_order_across_units():
    # Stops, unloads, loads, one daemon-reload, starts; by name within each group (fleet sorts by name
    # and then by task type: reconcile.go calculateTasksForUnits, task.go taskTypeSortOrder).
    def u(name: str, text: str = TEXT) -> Unit:
        return Unit.from_text(name, text)

    changed = u("b.service", TEXT + "Environment=V=2\n")
    desired = {
        "a.service": (u("a.service"), "launched"),
        "b.service": (changed, "launched"),
        "c.service": (u("c.service"), "loaded"),
        "d.service": (u("d.service"), "launched"),
    }
    current = {
        "a.service": None,
        "b.service": state(unit=u("b.service"), name="b.service"),
        "c.service": state(unit=u("c.service"), name="c.service"),
        "d.service": state(unit=u("d.service"), name="d.service"),
        "old.service": state("inactive", unit=u("old.service"), name="old.service"),
        "zz.service": state(unit=u("zz.service"), name="zz.service"),
    }
    plan = plan_agent(M, desired, current)
    assert kinds(plan) == [
        "stop b.service",
        "stop c.service",
        "stop zz.service",
        "unload old.service",
        "unload zz.service",
        "load a.service",
        "load b.service",
        "reload",
        "start a.service",
        "start b.service",
    ]
    assert plan.summary() == "agent 113f16a7: stop 3, unload 2, load 2, start 2"
    assert plan.units("start") == ("a.service", "b.service")


def test_summary_of_an_empty_plan():
    plan = plan_agent(M, {"web.service": (WEB, "launched")}, {"web.service": state()})
    assert plan == AgentPlan(M) and plan.summary() == "agent 113f16a7: nothing to do"


def test_the_desired_state_given_wins_over_the_units_own():
    # The agent passes the state it wants here (e.g. inactive after losing its lease) with the unit.
    plan = plan_agent(
        M, {"web.service": (WEB.with_desired_state("launched"), "inactive")}, {"web.service": state()}
    )
    assert kinds(plan) == [STOP, UNLOAD, "reload"]


@pytest.mark.parametrize(
    "desired, current, message",
    [
        ({"web.service": (WEB, "started")}, {}, "desired state 'started' of web.service"),
        (
            {},
            {"web.service": UnitState("web.service", "f" * 32, "loaded", "active", "running", "")},
            "is from fff",
        ),
    ],
)
def test_bad_input_is_refused(desired, current, message):
    with pytest.raises(ValueError, match=message):
        plan_agent(M, desired, current)

"""The engine's per-machine assignments (flotilla.fleet.assignments): derived from the snapshot and the
plan, written as the difference from what is there."""

from __future__ import annotations

from flotilla.fleet import ClusterSnapshot, FrozenMapping, Machine, Unit, plan_schedule
from flotilla.fleet.assignments import Assignment, AssignmentPlan, assignments_after, plan_assignments

A, B = "a" * 32, "b" * 32
SERVICE = "[Service]\nExecStart=/bin/true\n"


def unit(name: str, state: str = "launched", extra: str = "") -> Unit:
    return Unit.from_text(name, SERVICE + extra, state)


def snapshot(units, targets=None, machines=(A, B)) -> ClusterSnapshot:
    return ClusterSnapshot(tuple(Machine(m) for m in machines), tuple(units), FrozenMapping(targets or {}), 7)


def wanted(cluster: ClusterSnapshot) -> dict[tuple[str, str], Assignment]:
    return assignments_after(cluster, plan_schedule(cluster))


def test_a_record_round_trips_and_junk_is_not_a_record() -> None:
    record = Assignment("x.service", A, "abc", "loaded", True)
    assert Assignment.from_json(A, "x.service", record.to_json()) == record
    for junk in ("", "[]", "{}", '{"UnitHash": "abc", "TargetState": "inactive"}', b"\xff"):
        assert Assignment.from_json(A, "x.service", junk) is None


def test_scheduled_units_are_assigned_to_their_target_with_hash_and_desired_state() -> None:
    x, y = unit("x.service"), unit("y.service", "loaded")
    cluster = snapshot([x, y], {"x.service": A, "y.service": B})
    assert wanted(cluster) == {
        (A, "x.service"): Assignment("x.service", A, x.hash, "launched"),
        (B, "y.service"): Assignment("y.service", B, y.hash, "loaded"),
    }


def test_new_placements_are_assigned_where_the_plan_puts_them() -> None:
    cluster = snapshot([unit("x.service")])
    plan = plan_schedule(cluster)
    (placement,) = plan.schedule
    changes = plan_assignments(cluster, plan, {})
    assert [a.key for a in changes.placed] == [(placement.machine_id, "x.service")]
    assert changes.put == () and changes.delete == ()


def test_global_units_are_assigned_to_every_machine_they_qualify_for() -> None:
    g = unit("g.service", extra="[X-Fleet]\nGlobal=true\nMachineMetadata=role=web\n")
    machines = (Machine(A, metadata={"role": "web"}), Machine(B, metadata={"role": "db"}))
    cluster = ClusterSnapshot(machines, (g,), FrozenMapping(), 3)
    assert wanted(cluster) == {(A, "g.service"): Assignment("g.service", A, g.hash, "launched", True)}


def test_inactive_templates_and_unknown_units_are_not_assigned() -> None:
    units = [unit("off.service", "inactive"), unit("t@.service")]
    assert wanted(snapshot(units, {"off.service": A, "t@.service": A, "gone.service": B})) == {}


def test_only_differences_are_written() -> None:
    x, y = unit("x.service"), unit("y.service", "loaded")
    cluster = snapshot([x, y], {"x.service": A, "y.service": B})
    current = {
        (A, "x.service"): Assignment("x.service", A, x.hash, "launched"),  # as wanted
        (B, "y.service"): Assignment("y.service", B, y.hash, "launched"),  # the user stopped it since
        (A, "old.service"): Assignment("old.service", A, "h", "launched"),  # destroyed since
        (B, "junk.service"): None,  # unreadable
    }
    changes = plan_assignments(cluster, plan_schedule(cluster), current)
    assert changes == AssignmentPlan(
        placed=(),
        put=(Assignment("y.service", B, y.hash, "loaded"),),
        delete=((A, "old.service"), (B, "junk.service")),
    )
    assert not plan_assignments(cluster, plan_schedule(cluster), wanted(cluster))


def test_a_unit_moving_off_a_dead_machine_is_deleted_by_its_unscheduling_not_twice() -> None:
    x = unit("x.service")
    cluster = snapshot([x], {"x.service": B}, machines=(A,))  # B died
    plan = plan_schedule(cluster)
    assert [(u.unit, u.machine_id) for u in plan.unschedule] == [("x.service", B)]
    changes = plan_assignments(
        cluster, plan, {(B, "x.service"): Assignment("x.service", B, x.hash, "launched")}
    )
    assert changes.delete == ()  # the unscheduling's transaction removes it with the target
    assert changes.placed == (Assignment("x.service", A, x.hash, "launched"),)

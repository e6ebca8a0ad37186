"""The engine's planner, rule by rule, against fleet's engine (engine/reconciler.go
``calculateClusterTasks``, engine/scheduler.go ``leastLoadedScheduler``, agent/state.go ``AbleToRun``) and
issue 7 (every unschedulable unit says why)."""

from __future__ import annotations

import pytest

from flotilla.fleet import (
    ClusterSnapshot,
    FrozenMapping,
    Machine,
    Placement,
    SchedulePlan,
    Unit,
    Unscheduling,
    global_units_for,
    plan_schedule,
)
from flotilla.units import UnitError

A = "a" * 32
B = "b" * 32
C = "c" * 32


def unit(name: str, state: str = "launched", **xfleet: str | list[str]) -> Unit:
    """A unit with the given [X-Fleet] options (a list value repeats the key)."""
    lines = ["[Service]", "ExecStart=/bin/sleep 1000"]
    if xfleet:
        lines.append("[X-Fleet]")
        for key, value in xfleet.items():
            for one in value if isinstance(value, list) else [value]:
                lines.append(f"{key}={one}")
    return Unit.from_text(name, "\n".join(lines) + "\n", state)


def machines(*ids: str, **metadata: dict[str, str]) -> tuple[Machine, ...]:
    return tuple(Machine(i, metadata=metadata.get(f"m{i[0]}", {})) for i in ids)


def plan(ms, units, targets=None) -> SchedulePlan:
    return plan_schedule(ClusterSnapshot(tuple(ms), tuple(units), targets or {}))


def final(p: SchedulePlan, targets=None) -> dict[str, str]:
    return dict(p.apply(targets or {}))


# -- the model ------------------------------------------------------------------------------------------


def test_machine_short_id_and_hashable_metadata():
    m = Machine("113f16a7" + "0" * 24, "172.17.8.103", {"region": "us-west"})
    assert m.short_id == "113f16a7"
    assert m.matches_id("113f16a7") and m.matches_id(m.id) and not m.matches_id("113f16a")
    assert hash(m) == hash(Machine(m.id, "172.17.8.103", [("region", "us-west")]))
    assert m.metadata["region"] == "us-west" and isinstance(m.metadata, FrozenMapping)


def test_unit_from_text_parses_once_with_fleets_hash_and_specifiers():
    u = unit("web@2.service", MachineOf="db@%i.service", Conflicts="web@*.service")
    assert u.options.machine_of == ("db@2.service",)  # %i expanded as fleet's unitPrintf
    assert u.options.conflicts == ("web@*.service",)
    assert len(u.hash) == 40 and not u.is_global and not u.is_template
    assert unit("web@.service").is_template
    assert unit("g.service", Global="true").is_global


@pytest.mark.parametrize(
    "name, text, state, error",
    [
        ("nosuffix", "[Service]\n", "launched", UnitError),
        ("a.service", "[Service\n", "launched", UnitError),
        ("a.service", "[Service]\n", "running", ValueError),
    ],
)
def test_unit_from_text_rejects(name, text, state, error):
    with pytest.raises(error):
        Unit.from_text(name, text, state)


def test_snapshot_rejects_duplicates_and_freezes_targets():
    with pytest.raises(ValueError, match="machine a+ twice"):
        ClusterSnapshot(machines=(Machine(A), Machine(A)))
    snap = ClusterSnapshot(targets={"x.service": A})
    assert isinstance(snap.targets, FrozenMapping) and hash(snap) == hash(
        ClusterSnapshot(targets={"x.service": A})
    )


# -- rule 1: scheduled units are unscheduled when they can no longer run there (reconciler.go decide) ----


def test_nothing_to_do_when_scheduled_unit_is_able_to_run():
    # reconciler_test.go: "do nothing if Job is scheduled and target machine exists"
    p = plan(machines(A, B), [unit("x.service")], {"x.service": A})
    assert p == SchedulePlan() and p.summary() == "scheduled 0, unscheduled 0, 0 unschedulable"


def test_scheduled_units_are_not_rebalanced():
    # fleet reschedules only when a machine is lost or a rule breaks, never for balance.
    units = [unit(f"u{i}.service") for i in range(4)]
    p = plan(machines(A, B), units, {u.name: A for u in units})
    assert p.schedule == () and p.unschedule == ()


@pytest.mark.parametrize(
    "ms, u, target, reason, moved_to",
    [
        # reconciler_test.go: "unschedule if Job's target state inactive and is scheduled"
        (machines(A, B), unit("x.service", "inactive"), A, "desired state is inactive", None),
        # reconciler_test.go: "reschedule if Job's target machine is gone" — the failover path
        (machines(B), unit("x.service"), A, f"machine {A[:8]} went away", B),
        (
            machines(A, B, ma={"disk": "hdd"}, mb={"disk": "ssd"}),
            unit("x.service", MachineMetadata="disk=ssd"),
            A,
            f"machine {A[:8]} no longer satisfies MachineMetadata disk=ssd",
            B,
        ),
        (
            machines(A, B),
            unit("x.service", MachineID=B[:8]),
            A,
            f"MachineID {B[:8]} does not name machine {A[:8]}",
            B,
        ),
    ],
    ids=["inactive", "machine-gone", "metadata-changed", "machine-id-differs"],
)
def test_unschedule_when_machine_can_no_longer_run_it(ms, u, target, reason, moved_to):
    p = plan(ms, [u], {u.name: target})
    assert p.unschedule == (Unscheduling(u.name, target, reason),)
    assert p.schedule == ((Placement(u.name, moved_to),) if moved_to else ())
    assert p.unschedulable == {}


@pytest.mark.parametrize(
    "name, u, reason",
    [
        ("gone.service", None, "unit is no longer in the registry"),
        ("g.service", unit("g.service", Global="true"), "global units are not scheduled by the engine"),
        ("t@.service", unit("t@.service", "inactive"), "template units are never scheduled"),
    ],
)
def test_stale_targets_are_removed(name, u, reason):
    p = plan(machines(A), [u] if u else [], {name: A})
    assert len(p.unschedule) == 1 and p.unschedule[0][:2] == (name, A)
    assert p.unschedule[0].reason.startswith(reason)
    assert name not in final(p, {name: A})


def test_two_conflicting_units_on_one_machine_the_later_name_moves():
    units = [unit("a.service", Conflicts="b.service"), unit("b.service")]
    p = plan(machines(A, B), units, {"a.service": A, "b.service": A})
    assert p.unschedule == (
        Unscheduling("b.service", A, f"matches Conflicts=b.service of a.service on machine {A[:8]}"),
    )
    assert p.schedule == (Placement("b.service", B),)


def test_follower_follows_its_machineof_peer_when_the_peer_moves():
    units = [unit("db.service"), unit("app.service", MachineOf="db.service")]
    p = plan(machines(B, C), units, {"db.service": A, "app.service": C})
    assert p.unschedule == (
        Unscheduling("app.service", C, f"MachineOf peer db.service is not on machine {C[:8]}"),
        Unscheduling("db.service", A, f"machine {A[:8]} went away"),
    )
    # db goes to the least-loaded machine (B and C are empty once app left; tie by id), app follows.
    assert p.schedule == (Placement("db.service", B), Placement("app.service", B))


def test_follower_that_ends_where_it_was_is_not_moved():
    units = [unit("db.service"), unit("app.service", MachineOf="db.service")]
    p = plan(machines(B, C), units, {"db.service": A, "app.service": B})
    assert p.unschedule == (Unscheduling("db.service", A, f"machine {A[:8]} went away"),)
    assert p.schedule == (Placement("db.service", B),)


# -- rule 3: placement, least-loaded (scheduler.go) --------------------------------------------------------


def test_least_loaded_counts_this_plans_decisions_and_breaks_ties_by_id():
    # scheduler_test.go TestAgentStateSorting: fewest units first, then machine id.
    p = plan(machines(C, A, B), [unit(f"u{i}.service") for i in range(5)], {})
    assert [m for _, m in p.schedule] == [A, B, C, A, B]


def test_least_loaded_with_existing_load():
    existing = [unit(f"old{i}.service") for i in range(3)]
    p = plan(
        machines(A, B),
        existing + [unit("new.service")],
        {"old0.service": A, "old1.service": A, "old2.service": B},
    )
    assert p.schedule == (Placement("new.service", B),)


def test_inactive_units_are_not_placed_and_not_reported():
    p = plan(machines(A), [unit("x.service", "inactive")])
    assert p == SchedulePlan()


def test_loaded_units_are_placed_like_launched_ones():
    assert plan(machines(A), [unit("x.service", "loaded")]).schedule == (Placement("x.service", A),)


def test_no_machines():
    p = plan([], [unit("x.service")])
    assert p.unschedulable == {"x.service": "no machines are available"}


@pytest.mark.parametrize(
    "ms, u, expected",
    [
        (machines(A, B), unit("x.service", MachineID=B), B),
        (machines(A, B), unit("x.service", MachineID=B[:8]), B),  # job.go: the short ID also pins
        (
            machines(A, B),
            unit("x.service", MachineID="113f16a7"),
            "MachineID 113f16a7 is not a known machine",
        ),
        (machines(A, B), unit("x.service", MachineID=B[:7]), f"MachineID {B[:7]} is not a known machine"),
        (
            machines(A, B, ma={"region": "us-east"}, mb={"region": "us-west", "disk": "ssd"}),
            unit("x.service", MachineMetadata=["region=us-west", "disk=ssd"]),
            B,
        ),
        (  # values of one key OR
            machines(A, B, ma={"region": "eu"}, mb={"region": "us-west"}),
            unit("x.service", MachineMetadata=['"region=us-west" "region=us-east"']),
            B,
        ),
        (  # keys AND: B lacks disk
            machines(A, B, ma={"region": "eu"}, mb={"region": "us-west"}),
            unit("x.service", MachineMetadata=["region=us-west", "disk=ssd"]),
            "no machine satisfies MachineMetadata region=us-west disk=ssd",
        ),
        (
            machines(A, B),
            unit("x.service", MachineMetadata="region=us-west"),
            "no machine satisfies MachineMetadata region=us-west",
        ),
        (
            machines(A, B, mb={"region": "us-west"}),
            unit("x.service", MachineID=A, MachineMetadata="region=us-west"),
            f"machine {A[:8]} (MachineID/MachineOf) does not satisfy MachineMetadata region=us-west",
        ),
    ],
    ids=[
        "full-id",
        "short-id",
        "unknown-id",
        "7-chars-is-no-id",
        "and",
        "or",
        "and-fails",
        "no-key",
        "id+meta",
    ],
)
def test_machine_id_and_metadata(ms, u, expected):
    p = plan(ms, [u])
    if len(expected) == 32:
        assert p.schedule == (Placement(u.name, expected),)
    else:
        assert p.schedule == () and p.unschedulable == {u.name: expected}


def test_conflicts_spread_instances_and_say_why_when_full():
    units = [unit(f"hello@{i}.service", Conflicts="hello@*.service") for i in range(1, 5)]
    p = plan(machines(A, B, C), units)
    assert p.schedule == (
        Placement("hello@1.service", A),
        Placement("hello@2.service", B),
        Placement("hello@3.service", C),
    )
    assert p.unschedulable == {"hello@4.service": "Conflicts with hello@*.service on every machine"}
    assert p.summary() == "scheduled 3, unscheduled 0, 1 unschedulable"


def test_conflicts_apply_in_both_directions():
    # agent/state.go HasConflict: either unit's Conflicts may name the other.
    p = plan(machines(A, B), [unit("a.service", Conflicts="z*.service"), unit("z.service")], {"a.service": A})
    assert p.schedule == (Placement("z.service", B),)
    p = plan(machines(A), [unit("a.service", Conflicts="z*.service"), unit("z.service")], {"a.service": A})
    assert p.unschedulable == {"z.service": "matches Conflicts=z*.service of a unit on every machine"}
    p = plan(
        machines(A, B, mb={"k": "v"}),
        [unit("a.service", Conflicts="z*.service"), unit("z.service", MachineMetadata="k=v")],
        {"a.service": B},
    )
    assert p.unschedulable == {"z.service": f"matches Conflicts=z*.service of a.service on machine {B[:8]}"}


def test_conflicts_against_this_plans_own_decisions_and_least_loaded_order():
    units = [unit("a.service"), unit("b.service", Conflicts="a.service"), unit("c.service")]
    p = plan(machines(A, B), units)
    # a -> A; b cannot join a, so B; c -> A (tie 1:1, lowest id)
    assert p.schedule == (Placement("a.service", A), Placement("b.service", B), Placement("c.service", A))


def test_machineof_places_peer_first_even_when_the_follower_sorts_first():
    units = [unit("a-app.service", MachineOf="z-db.service"), unit("z-db.service"), unit("m.service")]
    p = plan(machines(A, B), units)
    assert p.schedule == (
        Placement("m.service", A),
        Placement("z-db.service", B),
        Placement("a-app.service", B),
    )


@pytest.mark.parametrize(
    "units, reason",
    [
        (
            [unit("db.service", "inactive")],
            "waiting for MachineOf peer db.service to be scheduled (its desired state is inactive)",
        ),
        ([], "waiting for MachineOf peer db.service, which is not in the registry"),
        ([unit("db.service", MachineID="feedface")], "waiting for MachineOf peer db.service to be scheduled"),
    ],
)
def test_machineof_waits_for_its_peer(units, reason):
    p = plan(machines(A, B), units + [unit("app.service", MachineOf="db.service")])
    assert p.unschedulable["app.service"] == reason


def test_machineof_cycle_is_reported():
    units = [unit("a.service", MachineOf="b.service"), unit("b.service", MachineOf="a.service")]
    p = plan(machines(A), units)
    assert p.schedule == ()
    assert "MachineOf must not loop" in p.unschedulable["a.service"]
    # Already co-located members of a cycle are left alone (fleet's AbleToRun is satisfied).
    assert plan(machines(A), units, {"a.service": A, "b.service": A}) == SchedulePlan()


def test_machineof_peers_on_different_machines():
    units = [unit("x.service"), unit("y.service"), unit("f.service", MachineOf=["x.service", "y.service"])]
    p = plan(machines(A, B), units, {"x.service": A, "y.service": B})
    assert p.unschedulable == {
        "f.service": "its MachineOf peers (x.service, y.service) do not share a machine"
    }


def test_machineof_respects_follower_conflicts():
    units = [
        unit("db.service"),
        unit("x.service"),
        unit("app.service", MachineOf="db.service", Conflicts="x.service"),
    ]
    p = plan(machines(A), units, {"db.service": A, "x.service": A})
    assert p.unschedulable == {"app.service": f"Conflicts with x.service on machine {A[:8]}"}


# -- Replaces ------------------------------------------------------------------------------------------------


def test_replaces_moves_the_replaced_unit_to_the_least_loaded_other_machine():
    units = [unit("old.service"), unit("new.service", Replaces="old.service"), unit("pad.service")]
    # new is forced onto A where old runs; old moves to the least-loaded machine other than A.
    units[1] = unit("new.service", Replaces="old.service", MachineMetadata="slot=a")
    ms = machines(A, B, C, ma={"slot": "a"})
    p = plan(ms, units, {"old.service": A, "pad.service": B})
    assert p.unschedule == (Unscheduling("old.service", A, f"replaced by new.service on machine {A[:8]}"),)
    assert set(p.schedule) == {Placement("new.service", A), Placement("old.service", C)}


def test_replaces_between_two_scheduled_units():
    units = [unit("old.service"), unit("new.service", Replaces="old.service")]
    p = plan(machines(A, B), units, {"old.service": A, "new.service": A})
    assert p.unschedule == (Unscheduling("old.service", A, f"replaced by new.service on machine {A[:8]}"),)
    assert p.schedule == (Placement("old.service", B),)


def test_a_replaced_unit_never_lands_beside_its_replacer():
    units = [unit("new.service", Replaces="old.service"), unit("old.service")]
    p = plan(machines(A), units, {"new.service": A})
    assert p.unschedulable == {"old.service": f"is replaced by new.service on machine {A[:8]}"}


def test_mutual_replaces_cancel_out():
    # agent/state.go hasReplace ignores circular replaces to avoid endless rescheduling.
    units = [unit("a.service", Replaces="b.service"), unit("b.service", Replaces="a.service")]
    assert plan(machines(A, B), units, {"a.service": A, "b.service": A}) == SchedulePlan()


def test_replaced_unit_takes_its_followers_along():
    units = [
        unit("old.service"),
        unit("side.service", MachineOf="old.service"),
        unit("new.service", Replaces="old.service", MachineID=A),
    ]
    p = plan(machines(A, B), units, {"old.service": A, "side.service": A})
    assert final(p, {"old.service": A, "side.service": A}) == {
        "new.service": A,
        "old.service": B,
        "side.service": B,
    }
    assert (
        Unscheduling("side.service", A, f"MachineOf peer old.service moved off machine {A[:8]}")
        in p.unschedule
    )


def test_replace_cycle_ends():
    # a replaces b, b replaces c, c replaces a: every unit moves at most once, so planning terminates.
    units = [
        unit("a.service", Replaces="b.service"),
        unit("b.service", Replaces="c.service"),
        unit("c.service", Replaces="a.service"),
    ]
    p = plan(machines(A, B), units)
    assert set(final(p)) | set(p.unschedulable) == {"a.service", "b.service", "c.service"}


# -- templates and global units ------------------------------------------------------------------------------


def test_templates_are_never_scheduled_but_instances_are():
    units = [unit("web@.service", "inactive"), unit("web@1.service"), unit("web@2.service")]
    p = plan(machines(A, B), units)
    assert p.schedule == (Placement("web@1.service", A), Placement("web@2.service", B))
    bad = plan(machines(A), [unit("web@.service", "launched")])
    assert bad.schedule == ()
    assert bad.unschedulable == {
        "web@.service": "template units are never scheduled; start an instance instead"
    }


def test_global_units_are_not_scheduled_but_count_as_load_and_block_conflicts():
    ms = machines(A, B, mb={"role": "edge"})
    units = [
        unit("edge-proxy.service", Global="true", MachineMetadata="role=edge"),
        unit("x.service"),
        unit("y.service", Conflicts="edge-proxy.service"),
        unit("z.service"),
    ]
    p = plan(ms, units)
    # x: A (0) vs B (1, the global) -> A; y cannot go where the proxy runs -> A; z: A has 2, B has 1 -> B
    assert p.schedule == (Placement("x.service", A), Placement("y.service", A), Placement("z.service", B))


def test_global_unit_yields_to_an_already_scheduled_conflicting_unit():
    ms = machines(A, B)
    units = [unit("g.service", Global="yes", Conflicts="x.service"), unit("x.service")]
    assert plan(ms, units, {"x.service": A}) == SchedulePlan(globals=FrozenMapping({B: ("g.service",)}))
    assert global_units_for(ms[0], units, ["x.service"]) == ()
    assert global_units_for(ms[1], units, []) == (units[0],)


@pytest.mark.parametrize(
    "metadata, targeted, expected",
    [
        ({"role": "edge"}, [], ["g1.service", "g2.service"]),
        ({}, [], ["g2.service"]),  # g1 needs role=edge
        ({"role": "edge"}, ["db.service"], ["g2.service"]),  # db conflicts with g1
        ({"role": "edge"}, ["web.service"], ["g1.service"]),  # g2 conflicts with web*
    ],
)
def test_global_units_for(metadata, targeted, expected):
    units = [
        unit("g1.service", Global="true", MachineMetadata="role=edge"),
        unit("g2.service", Global="true", Conflicts="web*.service"),
        unit("g3.service", "inactive", Global="true"),
        unit("t@.service", "inactive", Global="true"),
        unit("db.service", Conflicts="g1.service"),
        unit("web.service"),
    ]
    got = global_units_for(Machine(A, metadata=metadata), units, targeted)
    assert [u.name for u in got] == expected


def test_global_units_conflicting_with_each_other_earlier_name_wins():
    units = [unit("g1.service", Global="true"), unit("g2.service", Global="true", Conflicts="g1.service")]
    assert [u.name for u in global_units_for(Machine(A), units, [])] == ["g1.service"]


def test_machineof_a_global_unit_runs_where_it_runs():
    ms = machines(A, B, mb={"role": "edge"})
    units = [
        unit("g.service", Global="true", MachineMetadata="role=edge"),
        unit("f.service", MachineOf="g.service"),
    ]
    assert plan(ms, units).schedule == (Placement("f.service", B),)


# -- determinism, results ------------------------------------------------------------------------------------


def test_same_snapshot_same_plan_whatever_the_input_order():
    units = [unit(f"w@{i}.service", Conflicts="w@*.service") for i in range(6)] + [unit("solo.service")]
    ms = machines(A, B, C)
    first = plan(ms, units)
    assert plan(ms, units) == first
    assert plan(tuple(reversed(ms)), list(reversed(units))) == first


def test_plan_apply_and_revision():
    snap = ClusterSnapshot(machines(B), (unit("x.service"),), {"x.service": A}, revision=42)
    p = plan_schedule(snap)
    assert p.revision == 42
    assert p.apply(snap.targets) == FrozenMapping({"x.service": B})
    assert p.summary() == "scheduled 1, unscheduled 1, 0 unschedulable"


def test_a_unit_never_replaces_its_own_machineof_peer():
    # fleet's API refuses "peer matches replace"; a registry written around the API must still plan
    # sanely: the follower waits rather than chasing its peer away (found by the property test).
    units = [unit("u0.service"), unit("u3.service", MachineOf="u0.service", Replaces="u*.service")]
    p = plan(machines(A, B), units)
    assert p.schedule == (Placement("u0.service", A),)
    assert p.unschedulable == {
        "u3.service": f"would replace its own MachineOf peer u0.service on machine {A[:8]}"
    }


def test_global_units_are_never_replaced():
    units = [unit("g.service", Global="true"), unit("u.service", Replaces="g.service")]
    assert plan(machines(A), units).schedule == (Placement("u.service", A),)

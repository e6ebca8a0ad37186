"""Properties of the engine's planner over generated clusters (hypothesis): whatever the snapshot — even
with option combinations fleet's API would refuse, stale targets and MachineOf cycles — the targets
after a plan never break a rule, the plan is deterministic, re-planning changes nothing, and without
constraints the load stays balanced. Plus the issue's size: 10,000 units onto 100 machines."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.fleet import ClusterSnapshot, Machine, Unit, global_units_for, plan_schedule
from flotilla.units import FleetOptions, go_path_match

MACHINE_IDS = [f"{i:x}" * 32 for i in range(1, 7)]
UNIT_NAMES = [f"u{i}.service" for i in range(5)] + [f"w@{i}.service" for i in range(5)] + ["w@.service"]
GLOBAL_NAMES = ["g0.service", "g1.service"]
PATTERNS = ["w@*.service", "u1.service", "u*.service", "g0.service", "w@[0-2].service", "nothing.service"]
METADATA = {"region": ["east", "west"], "disk": ["ssd", "hdd"]}


@st.composite
def machines(draw) -> tuple[Machine, ...]:
    ids = draw(st.lists(st.sampled_from(MACHINE_IDS), min_size=1, max_size=6, unique=True))
    result = []
    for machine_id in ids:
        keys = draw(st.lists(st.sampled_from(sorted(METADATA)), unique=True))
        result.append(Machine(machine_id, metadata={k: draw(st.sampled_from(METADATA[k])) for k in keys}))
    return tuple(result)


@st.composite
def options(draw, constrained: bool) -> FleetOptions:
    if not constrained:
        return FleetOptions()
    requirement = st.tuples(st.sampled_from(sorted(METADATA)), st.sampled_from(["east", "west", "ssd"]))
    metadata: dict[str, list[str]] = {}
    for key, value in draw(st.lists(requirement, max_size=2)):
        metadata.setdefault(key, []).append(value)
    machine_id = draw(
        st.none()
        | st.sampled_from(MACHINE_IDS)
        | st.sampled_from([m[:8] for m in MACHINE_IDS])
        | st.just("0ff")
    )
    return FleetOptions(
        machine_id=draw(st.none() | st.none() | st.just(machine_id)),
        machine_of=tuple(draw(st.lists(st.sampled_from(UNIT_NAMES + GLOBAL_NAMES), max_size=1))),
        machine_metadata=tuple((k, tuple(v)) for k, v in metadata.items()),
        conflicts=tuple(draw(st.lists(st.sampled_from(PATTERNS), max_size=2))),
        replaces=tuple(draw(st.lists(st.sampled_from(PATTERNS), max_size=1))),
    )


@st.composite
def snapshots(draw, constrained: bool = True) -> ClusterSnapshot:
    ms = draw(machines())
    names = draw(st.lists(st.sampled_from(UNIT_NAMES), unique=True, max_size=len(UNIT_NAMES)))
    if constrained:
        names += draw(st.lists(st.sampled_from(GLOBAL_NAMES), unique=True))
    units = []
    for name in names:
        state = draw(st.sampled_from(["launched", "launched", "loaded", "inactive"]))
        opts = draw(options(constrained))
        if name in GLOBAL_NAMES:
            opts = FleetOptions(
                machine_metadata=opts.machine_metadata, conflicts=opts.conflicts, global_=True
            )
        units.append(Unit(name, "0" * 40, "", state, opts))
    # Stale targets too: machines that went away and units that were destroyed.
    target_machines = st.sampled_from([m.id for m in ms] + ["dead" * 8])
    targets = draw(st.dictionaries(st.sampled_from(names + ["gone.service"]), target_machines))
    if not constrained:
        targets = {}
    return ClusterSnapshot(ms, tuple(units), targets, revision=draw(st.integers(0, 100)))


def conflicting(a: Unit | None, b: Unit | None) -> bool:
    if a is None or b is None:
        return False
    return any(go_path_match(p, b.name) for p in a.options.conflicts) or any(
        go_path_match(p, a.name) for p in b.options.conflicts
    )


def replaces(a: Unit, b: Unit) -> bool:
    one_way = any(go_path_match(p, b.name) for p in a.options.replaces)
    return one_way and not any(go_path_match(p, a.name) for p in b.options.replaces)


def check_rules(
    snapshot: ClusterSnapshot, targets: dict[str, str], globals_: dict[str, tuple[str, ...]]
) -> None:
    units = {u.name: u for u in snapshot.units}
    machines_by_id = {m.id: m for m in snapshot.machines}
    on: dict[str, list[str]] = {}
    for name, machine_id in targets.items():
        unit = units[name]
        machine = machines_by_id[machine_id]
        assert unit.desired_state != "inactive" and not unit.is_global and not unit.is_template, name
        if unit.options.machine_id is not None:
            assert machine.matches_id(unit.options.machine_id), (name, machine_id)
        assert unit.options.matches_metadata(machine.metadata), (name, machine_id)
        on.setdefault(machine_id, []).append(name)
    for machine_id in machines_by_id:
        # The globals the plan assigns a machine are the ones it qualifies for once the plan is written.
        expected = global_units_for(machines_by_id[machine_id], snapshot.units, on.get(machine_id, []))
        assert globals_.get(machine_id, ()) == tuple(g.name for g in expected), machine_id[:8]
    for machine_id, names in on.items():
        running = names + list(globals_.get(machine_id, ()))
        for name in names:
            for peer in units[name].options.machine_of:
                assert peer in running, f"{name} is on {machine_id[:8]} without its MachineOf peer {peer}"
        for i, first in enumerate(running):
            for second in running[i + 1 :]:
                assert not conflicting(units[first], units[second]), (first, second, machine_id[:8])
                if second in names and first in names:
                    assert not replaces(units[first], units[second]), (first, second)
                    assert not replaces(units[second], units[first]), (second, first)


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_plans_never_break_a_rule(snapshot):
    plan = plan_schedule(snapshot)
    after = dict(plan.apply(snapshot.targets))
    check_rules(snapshot, after, dict(plan.globals))
    # Every unit that wants to run is either scheduled or reported with a reason.
    for unit in snapshot.units:
        wants = unit.desired_state != "inactive" and not unit.is_global and not unit.is_template
        if wants:
            assert (unit.name in after) != (unit.name in plan.unschedulable), unit.name
            assert plan.unschedulable.get(unit.name, "x"), unit.name
    for name, _, reason in plan.unschedule:
        assert name in snapshot.targets and reason


@settings(max_examples=150, deadline=None)
@given(snapshots(), st.randoms(use_true_random=False))
def test_same_snapshot_same_plan(snapshot, rng):
    machines, units = list(snapshot.machines), list(snapshot.units)
    rng.shuffle(machines)
    rng.shuffle(units)
    shuffled = ClusterSnapshot(tuple(machines), tuple(units), dict(snapshot.targets), snapshot.revision)
    assert plan_schedule(shuffled) == plan_schedule(snapshot)


@settings(max_examples=150, deadline=None)
@given(snapshots())
def test_replanning_unschedules_nothing(snapshot):
    after = plan_schedule(snapshot).apply(snapshot.targets)
    again = plan_schedule(ClusterSnapshot(snapshot.machines, snapshot.units, after))
    assert again.unschedule == ()


@settings(max_examples=150, deadline=None)
@given(snapshots(constrained=False))
def test_load_stays_balanced_without_constraints(snapshot):
    plan = plan_schedule(snapshot)
    load = Counter({m.id: 0 for m in snapshot.machines})
    load.update(machine_id for _, machine_id in plan.schedule)
    assert max(load.values()) - min(load.values()) <= 1
    assert not plan.unschedulable or all("template" in r for r in plan.unschedulable.values())


def _big_snapshot(units_count: int, machines_count: int) -> ClusterSnapshot:
    ms = tuple(
        Machine(f"{i:032x}", metadata={"region": "east" if i % 2 else "west"}) for i in range(machines_count)
    )
    units = []
    for i in range(units_count):
        kind = i % 4
        if kind == 0:  # plain
            opts = FleetOptions()
        elif kind == 1:  # spread one group of 100 instances, one per machine (fleet's %p@* idiom)
            opts = FleetOptions(conflicts=(f"grp{i % 100}@*.service",))
        elif kind == 2:
            opts = FleetOptions(machine_metadata=(("region", ("east",)),))
        else:  # sidekick of the plain unit before it
            opts = FleetOptions(machine_of=(f"svc{i - 3}.service",))
        name = f"grp{i % 100}@{i}.service" if kind == 1 else f"svc{i}.service"
        units.append(Unit(name, "0" * 40, "", "launched", opts))
    return ClusterSnapshot(ms, tuple(units))


def test_ten_thousand_units_onto_one_hundred_machines():
    # The size (fleet's README ceiling was 1,000 units); this only has to finish — the timing is
    # bench/'s business, not a test's.
    snapshot = _big_snapshot(10_000, 100)
    plan = plan_schedule(snapshot)
    assert len(plan.schedule) == 10_000 and not plan.unschedulable
    after = dict(plan.apply({}))
    load = Counter(after.values())
    assert len(load) == 100 and max(load.values()) - min(load.values()) <= 2
    # A machine dies: only its units move.
    dead = snapshot.machines[0].id
    survivors = tuple(m for m in snapshot.machines if m.id != dead)
    failover = plan_schedule(ClusterSnapshot(survivors, snapshot.units, after))
    assert {name for name, _, _ in failover.unschedule} == {n for n, m in after.items() if m == dead}
    # Its grp instances have nowhere to go (each group already has one on every other machine).
    assert len(failover.schedule) + len(failover.unschedulable) == len(failover.unschedule)
    assert all("Conflicts with grp" in reason for reason in failover.unschedulable.values())

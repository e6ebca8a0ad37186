"""The engine's pure function: one ``ClusterSnapshot`` in, one ``SchedulePlan`` out (fleet's
engine/reconciler.go and engine/scheduler.go, with the rules of agent/state.go ``AbleToRun``).

Rules, in the order they are applied:

1. A scheduled unit is unscheduled when its desired state is inactive, its machine is gone, or the machine
   can no longer run it: MachineID or MachineMetadata no longer match, a Conflicts collides with a unit
   kept there (the unit later in name order yields), or a MachineOf peer is not there any more. Stale
   targets of templates, global units and destroyed units are removed too.
2. Global units are placed next, on every machine whose metadata they satisfy and where they conflict with
   nothing already there (units kept by rule 1, then globals in name order); the plan lists them per
   machine (``SchedulePlan.globals``) and ``global_units_for`` gives one machine's answer. As in fleet,
   they count towards a machine's load and block conflicting units. Once every other unit is placed they
   are admitted again, as a unit moved off a machine may have freed it for a global that unit blocked.
3. Every other non-inactive unit without a target is placed, MachineOf peers before their followers, on
   the least-loaded able machine (load = units on it, this plan's decisions included; ties by machine id).
   Able means: MachineID names it (full or 8-character short ID), MachineMetadata matches (keys AND, values
   of one key OR; a missing key fails), every MachineOf peer is there, no Conflicts glob matches in either
   direction, and no unit there Replaces this one. When a placed unit Replaces a unit on its machine,
   that unit (with its MachineOf followers) moves to the least-loaded other machine able to run it. A
   unit moves this way at most once per plan, so replace chains always end. Templates are never placed.

A scheduled unit is never moved for balance: fleet reschedules only when a machine is lost or a rule
above breaks. The plan is deterministic (sorted iteration everywhere) and costs O(units × log machines)
plus the glob work, which is done once per distinct pattern (see ``_Matcher``).
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from flotilla.units import FleetOptions, go_path_match

from .model import ClusterSnapshot, FrozenMapping, Machine, Unit

_GLOB_CHARS = frozenset("*?[\\")
_MAX_CAUSES_SHOWN = 3


class Placement(NamedTuple):
    """Schedule ``unit`` on ``machine_id`` (fleet's AttemptScheduleUnit task)."""

    unit: str
    machine_id: str


class Unscheduling(NamedTuple):
    """Remove ``unit``'s target ``machine_id`` (fleet's UnscheduleUnit task), and why."""

    unit: str
    machine_id: str
    reason: str


@dataclass(frozen=True)
class SchedulePlan:
    """What the engine leader writes after reading the snapshot at ``revision``.

    Contract: apply every ``unschedule`` before any ``schedule`` — a unit that moves appears in both,
    and a unit's new target may only be created after its old one is gone (fleet writes a target with
    PrevExist=false). Each write should be conditional on the value the snapshot saw, so a plan made
    from a stale snapshot fails instead of overwriting newer decisions. ``unschedulable`` gives, for
    every unit that wants to run but has no machine, the reason to show the user.
    """

    unschedule: tuple[Unscheduling, ...] = ()
    schedule: tuple[Placement, ...] = ()
    unschedulable: Mapping[str, str] = field(default_factory=FrozenMapping)
    revision: int = 0
    globals: Mapping[str, tuple[str, ...]] = field(default_factory=FrozenMapping)

    def summary(self) -> str:
        """One line for the engine's log, e.g. ``scheduled 3, unscheduled 1, 2 unschedulable``."""
        return (
            f"scheduled {len(self.schedule)}, unscheduled {len(self.unschedule)}, "
            f"{len(self.unschedulable)} unschedulable"
        )

    def apply(self, targets: Mapping[str, str]) -> FrozenMapping[str, str]:
        """``targets`` (unit -> machine) as they are once this plan is written."""
        result = dict(targets)
        for unit, _, _ in self.unschedule:
            result.pop(unit, None)
        for unit, machine_id in self.schedule:
            result[unit] = machine_id
        return FrozenMapping(result)


def plan_schedule(snapshot: ClusterSnapshot) -> SchedulePlan:
    """The engine's reconcile decision for ``snapshot`` (see the module docstring for the rules)."""
    return _Planner(snapshot).run()


def global_units_for(
    machine: Machine, units: Iterable[Unit], targets_on_machine: Iterable[str]
) -> tuple[Unit, ...]:
    """The global units ``machine`` should run, in name order: not templates, not desired inactive,
    MachineMetadata satisfied, and no Conflicts (either direction) with the units targeted at it
    (``targets_on_machine``, names looked up in ``units``) or with a global earlier in name order."""
    by_name = {unit.name: unit for unit in units}
    targeted = sorted(set(targets_on_machine))
    board = _Board({machine.id: machine}, by_name, by_name.keys() | set(targeted))
    for name in targeted:
        board.add(name, machine.id)
    admitted = board.admit_globals(machine.id, _runnable_globals(by_name.values()))
    return tuple(by_name[name] for name in admitted)


def _runnable_globals(units: Iterable[Unit]) -> list[Unit]:
    return sorted(
        (u for u in units if u.is_global and not u.is_template and u.desired_state != "inactive"),
        key=lambda u: u.name,
    )


def _format_metadata(options: FleetOptions) -> str:
    return " ".join(f"{key}={'|'.join(values)}" for key, values in options.machine_metadata)


def _short(machine_id: str) -> str:
    return machine_id[:8]


class _Matcher:
    """Go ``path.Match`` globs against a fixed universe of unit names, each distinct pattern evaluated
    once: literal patterns are a set lookup, globs only look at names sharing their literal prefix."""

    def __init__(self, names: Iterable[str]) -> None:
        self._known = frozenset(names)
        self._sorted = sorted(self._known)
        self._cache: dict[str, frozenset[str]] = {}

    def matches(self, pattern: str) -> frozenset[str]:
        found = self._cache.get(pattern)
        if found is None:
            found = self._cache[pattern] = self._compute(pattern)
        return found

    def _compute(self, pattern: str) -> frozenset[str]:
        cut = next((i for i, ch in enumerate(pattern) if ch in _GLOB_CHARS), None)
        if cut is None:
            return frozenset({pattern}) & self._known
        prefix = pattern[:cut]
        start = bisect.bisect_left(self._sorted, prefix)
        hits = []
        for name in self._sorted[start:]:
            if not name.startswith(prefix):
                break
            if go_path_match(pattern, name):
                hits.append(name)
        return frozenset(hits)


class _Board:
    """Which units are on which machine while a plan is made, indexed so every rule check costs a few
    dict lookups: for each machine and Conflicts/Replaces pattern, the units there that match the
    pattern (``*_hits``) and the units there that declare it (``*_owners``); machines ordered by load."""

    def __init__(self, machines: Mapping[str, Machine], units: Mapping[str, Unit], names: Iterable[str]):
        self.machines = machines
        self.units = units
        self.matcher = _Matcher(names)
        self.where: dict[str, set[str]] = {}
        self.load = dict.fromkeys(machines, 0)
        self.order = sorted((0, machine_id) for machine_id in machines)
        self.c_hits: dict[str, dict[str, set[str]]] = {m: {} for m in machines}
        self.c_owners: dict[str, dict[str, set[str]]] = {m: {} for m in machines}
        self.r_hits: dict[str, dict[str, set[str]]] = {m: {} for m in machines}
        self.r_owners: dict[str, dict[str, set[str]]] = {m: {} for m in machines}
        # Per pattern, on how many machines some unit matches it / declares it: answers "this Conflicts
        # collides everywhere" without visiting every machine.
        self.c_hit_machines: dict[str, int] = {}
        self.c_owner_machines: dict[str, int] = {}
        self.c_matched_by: dict[str, list[str]] = {}
        self.r_matched_by: dict[str, list[str]] = {}
        c_patterns = {p for u in units.values() if not u.is_template for p in u.options.conflicts}
        r_patterns = {p for u in units.values() if not u.is_global for p in u.options.replaces}
        for patterns, matched_by in ((c_patterns, self.c_matched_by), (r_patterns, self.r_matched_by)):
            for pattern in sorted(patterns):
                for name in self.matcher.matches(pattern):
                    matched_by.setdefault(name, []).append(pattern)

    def _conflicts_of(self, name: str) -> tuple[str, ...]:
        unit = self.units.get(name)
        return unit.options.conflicts if unit is not None else ()

    def _replaces_of(self, name: str) -> tuple[str, ...]:
        unit = self.units.get(name)
        return unit.options.replaces if unit is not None and not unit.is_global else ()

    def _is_global(self, name: str) -> bool:
        unit = self.units.get(name)
        return unit is not None and unit.is_global

    def add(self, name: str, machine_id: str) -> None:
        self._index(name, machine_id, adding=True)
        self.where.setdefault(name, set()).add(machine_id)
        self._shift_load(machine_id, +1)

    def remove(self, name: str, machine_id: str) -> None:
        self._index(name, machine_id, adding=False)
        self.where[name].discard(machine_id)
        if not self.where[name]:
            del self.where[name]
        self._shift_load(machine_id, -1)

    def _shift_load(self, machine_id: str, delta: int) -> None:
        old = self.load[machine_id]
        del self.order[bisect.bisect_left(self.order, (old, machine_id))]
        bisect.insort(self.order, (old + delta, machine_id))
        self.load[machine_id] = old + delta

    def _index(self, name: str, machine_id: str, adding: bool) -> None:
        groups = (
            (self.c_owners[machine_id], self._conflicts_of(name), self.c_owner_machines),
            (self.c_hits[machine_id], self.c_matched_by.get(name, ()), self.c_hit_machines),
            (self.r_owners[machine_id], self._replaces_of(name), None),
            # Global units run everywhere they may; Replaces cannot move them, so it does not see them.
            (self.r_hits[machine_id], () if self._is_global(name) else self.r_matched_by.get(name, ()), None),
        )
        for table, patterns, machine_counts in groups:
            for pattern in patterns:
                members = table.setdefault(pattern, set())
                was_empty = not members
                if adding:
                    members.add(name)
                else:
                    members.discard(name)
                if machine_counts is not None and was_empty != (not members):
                    machine_counts[pattern] = machine_counts.get(pattern, 0) + (1 if was_empty else -1)

    def conflict_cause(self, unit: Unit, machine_id: str) -> str | None:
        """Why ``unit`` (not on the machine) would collide there (fleet's HasConflict), or None."""
        hits = self.c_hits[machine_id]
        for pattern in unit.options.conflicts:
            if hits.get(pattern):
                return f"Conflicts with {pattern}"
        owners = self.c_owners[machine_id]
        for pattern in self.c_matched_by.get(unit.name, ()):
            found = owners.get(pattern)
            if found:
                return f"matches Conflicts={pattern} of {min(found)}"
        return None

    def replacer_here(self, unit: Unit, machine_id: str) -> str | None:
        """A unit on the machine that Replaces ``unit`` (and is not replaced by it in turn), or None."""
        owners = self.r_owners[machine_id]
        for pattern in self.r_matched_by.get(unit.name, ()):
            for other in sorted(owners.get(pattern, ())):
                if other != unit.name and not self._replaces(unit.name, other):
                    return other
        return None

    def victims(self, unit: Unit, machine_id: str) -> list[str]:
        """Units on the machine that ``unit`` Replaces; mutual Replaces cancel out, as in fleet."""
        if unit.is_global:
            return []
        hits = self.r_hits[machine_id]
        found = {
            other
            for pattern in unit.options.replaces
            for other in hits.get(pattern, ())
            if other != unit.name and not self._replaces(other, unit.name)
        }
        return sorted(found)

    def _replaces(self, name: str, other: str) -> bool:
        return any(other in self.matcher.matches(p) for p in self._replaces_of(name))

    def admit_globals(self, machine_id: str, globals_: Iterable[Unit]) -> list[str]:
        metadata = self.machines[machine_id].metadata
        admitted = []
        for unit in globals_:
            if unit.options.matches_metadata(metadata) and self.conflict_cause(unit, machine_id) is None:
                self.add(unit.name, machine_id)
                admitted.append(unit.name)
        return admitted


class _Planner:
    """One planning pass; the steps follow the module docstring's rules."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot = snapshot
        self.machines = {m.id: m for m in sorted(snapshot.machines, key=lambda m: m.id)}
        self.units = {u.name: u for u in snapshot.units}
        self.targets = dict(snapshot.targets)
        self.board = _Board(self.machines, self.units, self.units.keys() | self.targets.keys())
        self.reasons: dict[str, str] = {}  # first unschedule reason of each originally targeted unit
        self.unschedulable: dict[str, str] = {}
        self.displaced: set[str] = set()  # moved by Replaces in this plan; never moved twice
        self.located: dict[str, str] = {}  # non-global unit -> machine, in decision order
        self.by_metadata: dict[tuple[tuple[str, tuple[str, ...]], ...], frozenset[str]] = {}
        self.followers: dict[str, list[str]] = {}
        self.order, self.in_cycle = self._peer_order()
        self.globals: dict[str, tuple[str, ...]] = {}

    def run(self) -> SchedulePlan:
        self._keep_scheduled()
        globals_ = _runnable_globals(self.units.values())
        self.globals = {m: tuple(self.board.admit_globals(m, globals_)) for m in self.machines}
        self._check_kept_peers()
        self._evict_replaced_kept()
        self._place_unscheduled()
        self._readmit_globals(globals_)
        return self._plan()

    def _readmit_globals(self, globals_: list[Unit]) -> None:
        """A unit moved off a machine after rule 2 may have freed it for a global unit it blocked: admit
        the globals again against the final placement. Units placed since avoided the ones admitted
        then, so those stay; the result is what ``global_units_for`` says for the planned targets."""
        for machine_id, admitted in self.globals.items():
            for name in admitted:
                self.board.remove(name, machine_id)
            self.globals[machine_id] = tuple(self.board.admit_globals(machine_id, globals_))

    # -- ordering -------------------------------------------------------------------------------------

    def _peer_order(self) -> tuple[list[str], frozenset[str]]:
        """Schedulable units with every MachineOf peer before its followers (Kahn's algorithm, ties by
        name). Units on a MachineOf cycle, or following one, come last: they can only stay where they are."""
        names = sorted(n for n, u in self.units.items() if not u.is_global and not u.is_template)
        known = set(names)
        waiting = {}
        for name in names:
            peers = {p for p in self.units[name].options.machine_of if p in known}
            waiting[name] = len(peers)
            for peer in peers:
                self.followers.setdefault(peer, []).append(name)
        ready = [name for name in names if waiting[name] == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            name = heapq.heappop(ready)
            order.append(name)
            for follower in self.followers.get(name, ()):
                waiting[follower] -= 1
                if waiting[follower] == 0:
                    heapq.heappush(ready, follower)
        stuck = [name for name in names if waiting[name] > 0]
        return order + stuck, frozenset(stuck)

    # -- rule 1: keep or unschedule what is scheduled -------------------------------------------------

    def _keep_scheduled(self) -> None:
        for name in sorted(self.targets):
            machine_id = self.targets[name]
            unit = self.units.get(name)
            reason = self._unfit_reason(name, unit, machine_id)
            if reason is None:
                assert unit is not None
                cause = self.board.conflict_cause(unit, machine_id)
                reason = f"{cause} on machine {_short(machine_id)}" if cause else None
            if reason is not None:
                self.reasons[name] = reason
                continue
            self.board.add(name, machine_id)
            self.located[name] = machine_id

    def _unfit_reason(self, name: str, unit: Unit | None, machine_id: str) -> str | None:
        if unit is None:
            return "unit is no longer in the registry"
        if unit.is_template:
            return "template units are never scheduled; only their instances are"
        if unit.is_global:
            return "global units are not scheduled by the engine; agents run them"
        if unit.desired_state == "inactive":
            return "desired state is inactive"
        machine = self.machines.get(machine_id)
        if machine is None:
            return f"machine {_short(machine_id)} went away"
        options = unit.options
        if options.machine_id is not None and not machine.matches_id(options.machine_id):
            return f"MachineID {options.machine_id} does not name machine {_short(machine_id)}"
        if machine_id not in self._metadata_machines(options):
            wanted = _format_metadata(options)
            return f"machine {_short(machine_id)} no longer satisfies MachineMetadata {wanted}"
        return None

    def _check_kept_peers(self) -> None:
        for name in self.order:
            machine_id = self.located.get(name)
            if machine_id is None:
                continue
            for peer in self.units[name].options.machine_of:
                if machine_id not in self.board.where.get(peer, ()):
                    self._evict(name, f"MachineOf peer {peer} is not on machine {_short(machine_id)}")
                    break

    def _evict_replaced_kept(self) -> None:
        for name in sorted(self.located):
            machine_id = self.located.get(name)
            if machine_id is None:
                continue
            for victim in self.board.victims(self.units[name], machine_id):
                self._displace(victim, f"replaced by {name} on machine {_short(machine_id)}")

    def _evict(self, name: str, reason: str) -> None:
        machine_id = self.located.pop(name)
        self.board.remove(name, machine_id)
        if name in self.targets:
            self.reasons.setdefault(name, reason)

    def _displace(self, name: str, reason: str) -> list[str]:
        """Move ``name`` off its machine because it was replaced, with its MachineOf followers there;
        returns the units to place again, the replaced one first."""
        machine_id = self.located[name]
        self._evict(name, reason)
        self.displaced.add(name)
        moved = [name]
        pending = [name]
        while pending:
            peer = pending.pop(0)
            for follower in self.followers.get(peer, ()):
                if self.located.get(follower) == machine_id:
                    self._evict(follower, f"MachineOf peer {peer} moved off machine {_short(machine_id)}")
                    moved.append(follower)
                    pending.append(follower)
        return moved

    # -- rule 3: place what is not scheduled ----------------------------------------------------------

    def _place_unscheduled(self) -> None:
        queue = deque(name for name in self.order if self.units[name].desired_state != "inactive")
        while queue:
            name = queue.popleft()
            if name in self.located:
                continue
            unit = self.units[name]
            machine_id, reason = self._choose(unit)
            if machine_id is None:
                self.unschedulable[name] = reason
                continue
            self.unschedulable.pop(name, None)
            moved = []
            for victim in self.board.victims(unit, machine_id):
                moved.extend(self._displace(victim, f"replaced by {name} on machine {_short(machine_id)}"))
            self.board.add(name, machine_id)
            self.located[name] = machine_id
            queue.extendleft(reversed(moved))
        for name, unit in sorted(self.units.items()):
            if unit.is_template and unit.desired_state != "inactive":
                self.unschedulable[name] = "template units are never scheduled; start an instance instead"

    def _metadata_machines(self, options: FleetOptions) -> frozenset[str]:
        key = options.machine_metadata
        found = self.by_metadata.get(key)
        if found is None:
            found = frozenset(m.id for m in self.machines.values() if options.matches_metadata(m.metadata))
            self.by_metadata[key] = found
        return found

    def _restricted(self, unit: Unit) -> tuple[list[str] | None, str]:
        """The machines MachineID and MachineOf allow (None: any), or the reason there are none."""
        options = unit.options
        allowed: set[str] | None = None
        if options.machine_id is not None:
            allowed = {m for m, machine in self.machines.items() if machine.matches_id(options.machine_id)}
            if not allowed:
                return None, f"MachineID {options.machine_id} is not a known machine"
        for peer in dict.fromkeys(options.machine_of):
            where = self.board.where.get(peer)
            if not where:
                return None, self._peer_wait_reason(unit, peer)
            allowed = set(where) if allowed is None else allowed & where
            if not allowed:
                peers = ", ".join(dict.fromkeys(options.machine_of))
                wanted = "its MachineOf peers" if options.machine_id is None else "MachineID and MachineOf"
                return None, f"{wanted} ({peers}) do not share a machine"
        return (None if allowed is None else sorted(allowed)), ""

    def _peer_wait_reason(self, unit: Unit, peer: str) -> str:
        peer_unit = self.units.get(peer)
        if peer_unit is None:
            return f"waiting for MachineOf peer {peer}, which is not in the registry"
        if peer in self.in_cycle and unit.name in self.in_cycle:
            return f"waiting for MachineOf peer {peer}, caught in a MachineOf cycle (MachineOf must not loop)"
        if peer_unit.is_global:
            return f"waiting for MachineOf peer {peer} to run on a machine"
        if peer_unit.desired_state == "inactive":
            return f"waiting for MachineOf peer {peer} to be scheduled (its desired state is inactive)"
        return f"waiting for MachineOf peer {peer} to be scheduled"

    def _choose(self, unit: Unit) -> tuple[str | None, str]:
        """The least-loaded machine able to run ``unit`` (ties by id), or None and the reason."""
        if not self.machines:
            return None, "no machines are available"
        restricted, reason = self._restricted(unit)
        if reason:
            return None, reason
        metadata_ok = self._metadata_machines(unit.options) if unit.options.machine_metadata else None
        if restricted is None:
            everywhere = self._blocked_everywhere(unit) if metadata_ok is None else None
            if everywhere:
                return None, everywhere
            candidates: Iterable[str] = [machine_id for _, machine_id in self.board.order]
        else:
            candidates = sorted(restricted, key=lambda m: (self.board.load[m], m))
        for machine_id in candidates:
            if metadata_ok is not None and machine_id not in metadata_ok:
                continue
            if self._refusal(unit, machine_id) is None:
                return machine_id, ""
        return None, self._why_nowhere(unit, restricted, metadata_ok)

    def _blocked_everywhere(self, unit: Unit) -> str | None:
        # A shortcut for the common "every machine already has one" case (foo@N with Conflicts=foo@*).
        total = len(self.machines)
        for pattern in unit.options.conflicts:
            if self.board.c_hit_machines.get(pattern, 0) == total:
                return f"Conflicts with {pattern} on every machine"
        for pattern in self.board.c_matched_by.get(unit.name, ()):
            if self.board.c_owner_machines.get(pattern, 0) == total:
                return f"matches Conflicts={pattern} of a unit on every machine"
        return None

    def _refusal(self, unit: Unit, machine_id: str) -> str | None:
        cause = self.board.conflict_cause(unit, machine_id)
        if cause:
            return cause
        replacer = self.board.replacer_here(unit, machine_id)
        if replacer:
            return f"is replaced by {replacer}"
        victims = self.board.victims(unit, machine_id)
        for victim in victims:
            if victim in self.displaced:
                return f"would replace {victim}, which already moved in this pass"
        if victims and unit.options.machine_of:
            leaving = self._leaving_with(victims, machine_id)
            for peer in unit.options.machine_of:
                if peer in leaving:
                    return f"would replace its own MachineOf peer {peer}"
        return None

    def _leaving_with(self, victims: list[str], machine_id: str) -> set[str]:
        """The victims and, transitively, their MachineOf followers on the machine: all that moves."""
        leaving = set(victims)
        pending = list(victims)
        while pending:
            for follower in self.followers.get(pending.pop(), ()):
                if follower not in leaving and self.located.get(follower) == machine_id:
                    leaving.add(follower)
                    pending.append(follower)
        return leaving

    def _why_nowhere(
        self, unit: Unit, restricted: list[str] | None, metadata_ok: frozenset[str] | None
    ) -> str:
        pool = restricted if restricted is not None else list(self.machines)
        eligible = [m for m in pool if metadata_ok is None or m in metadata_ok]
        if not eligible:
            wanted = _format_metadata(unit.options)
            if restricted is None:
                return f"no machine satisfies MachineMetadata {wanted}"
            named = ", ".join(_short(m) for m in restricted)
            return f"machine {named} (MachineID/MachineOf) does not satisfy MachineMetadata {wanted}"
        causes = sorted({self._refusal(unit, m) or "" for m in eligible} - {""})
        shown = " or ".join(causes[:_MAX_CAUSES_SHOWN])
        if len(causes) > _MAX_CAUSES_SHOWN:
            shown += f" (and {len(causes) - _MAX_CAUSES_SHOWN} more)"
        if len(eligible) == 1:
            return f"{shown} on machine {_short(eligible[0])}"
        scope = "every machine" if len(eligible) == len(self.machines) else "every eligible machine"
        return f"{shown} on {scope}"

    # -- the result -----------------------------------------------------------------------------------

    def _plan(self) -> SchedulePlan:
        unschedule = []
        for name, machine_id in sorted(self.targets.items()):
            if self.located.get(name) != machine_id:
                reason = self.reasons.get(name, "moved")
                unschedule.append(Unscheduling(name, machine_id, reason))
        schedule = [
            Placement(name, machine_id)
            for name, machine_id in self.located.items()
            if self.targets.get(name) != machine_id
        ]
        return SchedulePlan(
            unschedule=tuple(unschedule),
            schedule=tuple(schedule),
            unschedulable=FrozenMapping(sorted(self.unschedulable.items())),
            revision=self.snapshot.revision,
            globals=FrozenMapping((m, names) for m, names in self.globals.items() if names),
        )

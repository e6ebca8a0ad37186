"""fleet's registry in the store, reached only through ``flotilla.client`` and the etcd v3 API, so fleet
runs unchanged on Flotilla's store and on a real etcd cluster (DESIGN decision 2).

Keys, under the prefix (default ``/_coreos.com/fleet/``), follow fleet's own layout (registry/*.go):

    unit/<sha1>                  {"Raw": "<unit text>"}        content-addressed, written before the job
    job/<name>/object            {"Name": ..., "UnitHash": ...}
    job/<name>/target-state      inactive | loaded | launched  (the desired state)
    job/<name>/target            machine ID                    (written by the engine)
    machines/<id>/object         {"ID","PublicIP","Metadata","Version"}   under the machine's lease
    machines/<id>/metadata/<k>   metadata set through the API
    states/<name>/<machine>      {"loadState","activeState","subState","machineState","unitHash",
                                  "fleetState"}                under the machine's lease
    lease/engine-leader          {"MachineID","Version"}       under the engine leader's lease
    engine/unschedulable/<name>  why the engine cannot place a unit (ours: fleetctl prints it, fleet hung)
    assignments/<id>/<name>      {"UnitHash","TargetState","Global"}  what machine <id> runs (ours, written
                                 by the engine leader: an agent reads and watches only its own; see
                                 flotilla.fleet.assignments)

Guarantees each method needs from the store (STYLE 6):
- ``create_unit`` is an atomic create of ``job/<name>/object`` (fails if the unit exists);
- ``schedule`` is an atomic create of ``job/<name>/target`` (a unit never gets two targets);
- ``unschedule`` is a compare-and-delete on the target's value (only the machine it names);
- ``campaign`` is an atomic create of the leader key under the candidate's lease; leadership ends when
  that lease does;
- ``snapshot``, ``engine_snapshot`` and ``assigned`` are each one read (a read-only txn of ranges), so
  every value in one is from the same revision; unit bodies are content-addressed and never rewritten, so
  they are read separately, once per process, and cached;
- the engine's writes (``write_plan``) are conditional on what its snapshot saw — the target it removes,
  the unit and desired state it assigns have not changed since — so a plan made from a stale snapshot
  fails instead of overwriting newer decisions; writes are batched into transactions, and a batch that
  fails is retried write by write so one stale decision does not hold up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from flotilla.client import ClientError, Compare, EtcdClient, KeyValue, Op
from flotilla.fleet.assignments import Assignment, AssignmentPlan
from flotilla.fleet.model import DESIRED_STATES, ClusterSnapshot, FrozenMapping, Machine, Unit, UnitState
from flotilla.fleet.planner import SchedulePlan

__all__ = [
    "Assigned",
    "DEFAULT_PREFIX",
    "ENGINE_VERSION",
    "Registry",
    "RegistryMirror",
    "RegistrySnapshot",
    "StateRecord",
]

DEFAULT_PREFIX = "/_coreos.com/fleet/"
ENGINE_VERSION = 1

_TXN_OPS = 120  # per transaction, compares and ops each; etcd's --max-txn-ops defaults to 128
_TXNS_IN_FLIGHT = 8
_BODY_RANGE_OVER = 1024  # this many unknown unit bodies are read with one range instead of batched gets


@dataclass(frozen=True)
class StateRecord:
    """A published unit state plus what fleet keeps beside it: the machine that published it and the
    fleet state the agent reached there (``loaded`` or ``launched``)."""

    state: UnitState
    machine: Machine | None
    fleet_state: str


@dataclass(frozen=True)
class RegistrySnapshot:
    """One consistent read: the planner's ``ClusterSnapshot`` plus published states and the leader."""

    cluster: ClusterSnapshot
    states: tuple[StateRecord, ...] = ()
    engine_leader: str | None = None
    unit_errors: FrozenMapping[str, str] = field(default_factory=FrozenMapping)
    unschedulable: FrozenMapping[str, str] = field(default_factory=FrozenMapping)
    # Only in the engine's snapshot (which has no states): (machine, unit) -> assignment / its mod revision.
    assignments: FrozenMapping[tuple[str, str], Assignment | None] = field(default_factory=FrozenMapping)
    assignment_revisions: FrozenMapping[tuple[str, str], int] = field(default_factory=FrozenMapping)

    def current_state(self, name: str) -> str:
        """fleet's current state of a unit: ``launched`` / ``loaded`` on its target, else ``inactive``
        (registry/job_state.go). A global unit reports ``-`` as fleetctl prints it."""
        unit = self.units_by_name.get(name)
        if unit is not None and unit.is_global:
            return "-"
        target = self.cluster.targets.get(name)
        if target is None:
            return "inactive"
        record = self._state_index.get((name, target))
        return "inactive" if record is None else (record.fleet_state or "loaded")

    @cached_property
    def units_by_name(self) -> dict[str, Unit]:
        return {unit.name: unit for unit in self.cluster.units}

    @cached_property
    def targets_by_machine(self) -> dict[str, tuple[str, ...]]:
        grouped: dict[str, list[str]] = {}
        for name, machine_id in self.cluster.targets.items():
            grouped.setdefault(machine_id, []).append(name)
        return {machine_id: tuple(sorted(names)) for machine_id, names in grouped.items()}

    @cached_property
    def global_units(self) -> tuple[Unit, ...]:
        return tuple(unit for unit in self.cluster.units if unit.is_global)

    @cached_property
    def _state_index(self) -> dict[tuple[str, str], StateRecord]:
        return {(r.state.name, r.state.machine_id): r for r in self.states}


@dataclass(frozen=True)
class Assigned:
    """One machine's assignments at ``revision``: the records, and the units (with their desired state)
    whose bodies could be read and parsed; ``errors`` says why any other was left out."""

    records: FrozenMapping[str, Assignment]
    units: FrozenMapping[str, Unit]
    revision: int
    errors: FrozenMapping[str, str] = field(default_factory=FrozenMapping)


@dataclass(frozen=True)
class _Write:
    """One conditional write; many are sent in one transaction."""

    compare: tuple[Compare, ...]
    ops: tuple[Op, ...]


class Registry:
    def __init__(self, client: EtcdClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self._texts: dict[str, str] = {}  # unit hash -> unit text; bodies are content-addressed, immutable
        self._parsed: dict[tuple[str, str], Unit] = {}  # (name, hash) -> parsed unit
        self._inflight: dict[str, asyncio.Future] = {}
        self._feeds: dict[str, _ChangeFeed] = {}

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def _dir(self, *parts: str) -> str:
        return self._key(*parts) + "/"

    # ------------------------------------------------------------------ reading

    async def snapshot(self) -> RegistrySnapshot:
        """Units, machines, targets, states and the engine's notes in one read (the API's and fleetctl's
        view). Callers asking while a read is in flight share it (single flight)."""
        return await self._single_flight("full", lambda: self._read_snapshot(states=True))

    async def engine_snapshot(self) -> RegistrySnapshot:
        """What the engine plans from: the snapshot without states, with every machine's assignments."""
        return await self._single_flight("engine", lambda: self._read_snapshot(assignments=True))

    async def _single_flight(self, what: str, read) -> RegistrySnapshot:
        inflight = self._inflight.get(what)
        if inflight is None or inflight.done():
            inflight = self._inflight[what] = asyncio.ensure_future(read())
        return await asyncio.shield(inflight)

    async def _read_snapshot(self, *, states: bool = False, assignments: bool = False) -> RegistrySnapshot:
        ops = [
            Op.get(self._dir("job"), prefix=True),
            Op.get(self._dir("machines"), prefix=True),
            Op.get(self._key("lease", "engine-leader")),
            Op.get(self._dir("engine", "unschedulable"), prefix=True),
        ]
        if states:
            ops.append(Op.get(self._dir("states"), prefix=True))
        if assignments:
            ops.append(Op.get(self._dir("assignments"), prefix=True))
        result = await self.client.txn(success=ops)
        kvs = [kv for response in result.responses for kv in response.kvs]
        return await self._decode_with_bodies(kvs, result.revision)

    async def _decode_with_bodies(self, kvs: list[KeyValue], revision: int) -> RegistrySnapshot:
        job_dir = self._dir("job").encode()
        hashes = {
            _json(kv.value).get("UnitHash", "")
            for kv in kvs
            if kv.key.startswith(job_dir) and kv.key.endswith(b"/object")
        }
        await self._read_bodies(hashes - {""})
        return self._decode(kvs, revision)

    def mirror(self) -> RegistryMirror:
        """A copy of what the engine plans from, kept current by one watch (see ``RegistryMirror``)."""
        return RegistryMirror(self)

    async def _read_bodies(self, hashes: set[str]) -> None:
        """Fetch the unit bodies not yet known (``self._texts``): batched gets, or one range for many."""
        missing = sorted(h for h in hashes if h not in self._texts)
        if not missing:
            return
        if len(missing) > _BODY_RANGE_OVER:
            kvs, _ = await self.client.get_prefix(self._dir("unit"))
        else:
            batches = [missing[i : i + _TXN_OPS] for i in range(0, len(missing), _TXN_OPS)]
            results = await asyncio.gather(
                *(self.client.txn(success=[Op.get(self._key("unit", h)) for h in batch]) for batch in batches)
            )
            kvs = [kv for result in results for response in result.responses for kv in response.kvs]
        cut = len(self._dir("unit"))
        for kv in kvs:
            self._texts[kv.key[cut:].decode("utf-8", "replace")] = _json(kv.value).get("Raw", "")

    def _decode(self, kvs: Iterable[KeyValue], revision: int) -> RegistrySnapshot:
        jobs: dict[str, dict[str, str]] = {}
        machines: dict[str, dict] = {}
        api_metadata: dict[str, dict[str, str]] = {}
        states: list[tuple[str, str, dict]] = []
        unschedulable: dict[str, str] = {}
        assignments: dict[tuple[str, str], Assignment | None] = {}
        assignment_revisions: dict[tuple[str, str], int] = {}
        leader = None
        cut = len(self.prefix)
        for kv in kvs:
            parts = kv.key.decode("utf-8", "replace")[cut:].split("/")
            value = kv.value.decode("utf-8", "replace")
            if parts[0] == "job" and len(parts) == 3:
                jobs.setdefault(parts[1], {})[parts[2]] = value
            elif parts[0] == "machines" and len(parts) == 3 and parts[2] == "object":
                machines[parts[1]] = _json(value)
            elif parts[0] == "machines" and len(parts) == 4 and parts[2] == "metadata":
                api_metadata.setdefault(parts[1], {})[parts[3]] = value
            elif parts[0] == "states" and len(parts) == 3:
                states.append((parts[1], parts[2], _json(value)))
            elif parts[0] == "lease" and parts[1:] == ["engine-leader"]:
                leader = _json(value).get("MachineID")
            elif parts[:2] == ["engine", "unschedulable"] and len(parts) == 3:
                unschedulable[parts[2]] = value
            elif parts[0] == "assignments" and len(parts) == 3:
                assignment_revisions[(parts[1], parts[2])] = kv.mod_revision
                # None for an unreadable record: never wanted, so the engine removes it
                assignments[(parts[1], parts[2])] = Assignment.from_json(parts[1], parts[2], value)
        machine_list = {
            mid: Machine(
                mid,
                body.get("PublicIP", ""),
                {**(body.get("Metadata") or {}), **api_metadata.get(mid, {})},
                str(body.get("Version", "")),
            )
            for mid, body in machines.items()
        }
        units, targets, errors = [], {}, {}
        for name, job in sorted(jobs.items()):
            unit_hash = _json(job.get("object", "{}")).get("UnitHash", "")
            desired = job.get("target-state", "inactive")
            if unit_hash not in self._texts or desired not in DESIRED_STATES:
                errors[name] = (
                    f"job {name} names unit body {unit_hash or '(none)'} that is missing or invalid"
                )
                continue
            unit = self._unit(name, unit_hash, self._texts[unit_hash], desired, errors)
            if unit is None:
                continue
            units.append(unit)
            if "target" in job and not unit.is_global:
                targets[name] = job["target"]
        records = []
        for name, machine_id, body in states:
            state = UnitState(
                name,
                machine_id,
                body.get("loadState", ""),
                body.get("activeState", ""),
                body.get("subState", ""),
                body.get("unitHash", ""),
            )
            records.append(StateRecord(state, machine_list.get(machine_id), body.get("fleetState", "")))
        cluster = ClusterSnapshot(
            tuple(machine_list[m] for m in sorted(machine_list)),
            tuple(units),
            FrozenMapping(targets),
            revision,
        )
        return RegistrySnapshot(
            cluster,
            tuple(records),
            leader,
            FrozenMapping(errors),
            FrozenMapping(unschedulable),
            FrozenMapping(assignments),
            FrozenMapping(assignment_revisions),
        )

    async def assigned(self, machine_id: str) -> Assigned:
        """What ``machine_id`` should run, in one read of its own assignments (the agent's view)."""
        directory = self._dir("assignments", machine_id)
        kvs, revision = await self.client.get_prefix(directory)
        records: dict[str, Assignment] = {}
        errors: dict[str, str] = {}
        for kv in kvs:
            name = kv.key[len(directory) :].decode("utf-8", "replace")
            record = Assignment.from_json(machine_id, name, kv.value)
            if record is None:
                errors[name] = f"assignment of {name} to {machine_id} is not readable"
            else:
                records[name] = record
        await self._read_bodies({r.unit_hash for r in records.values()})
        units: dict[str, Unit] = {}
        for name, record in records.items():
            text = self._texts.get(record.unit_hash)
            if text is None:
                errors[name] = f"unit body {record.unit_hash} of {name} is missing"
                continue
            unit = self._unit(name, record.unit_hash, text, record.desired_state, errors)
            if unit is not None:
                units[name] = unit
        return Assigned(FrozenMapping(records), FrozenMapping(units), revision, FrozenMapping(errors))

    def _unit(
        self, name: str, unit_hash: str, text: str, desired: str, errors: dict[str, str]
    ) -> Unit | None:
        cached = self._parsed.get((name, unit_hash))
        if cached is None:
            try:
                cached = Unit.from_text(name, text)
            except Exception as error:  # noqa: BLE001 - a bad record must not stop the whole cluster
                errors[name] = f"unit {name} cannot be parsed: {error}"
                return None
            self._parsed[(name, unit_hash)] = cached
        return cached if cached.desired_state == desired else cached.with_desired_state(desired)

    async def unit_text(self, unit_hash: str) -> str | None:
        await self._read_bodies({unit_hash})
        return self._texts.get(unit_hash)

    # ------------------------------------------------------------------ units

    async def create_unit(self, unit: Unit) -> bool:
        """Store a new unit with its desired state; False if a unit of that name exists."""
        job = self._key("job", unit.name, "object")
        body = json.dumps({"Name": unit.name, "UnitHash": unit.hash}, separators=(",", ":"))
        result = await self.client.txn(
            compare=[Compare.create_revision(job) == 0],
            success=[
                Op.put(self._key("unit", unit.hash), json.dumps({"Raw": unit.text}, separators=(",", ":"))),
                Op.put(job, body),
                Op.put(self._key("job", unit.name, "target-state"), unit.desired_state),
            ],
        )
        return result.succeeded

    async def set_desired_state(self, name: str, state: str) -> bool:
        """False if the unit does not exist."""
        if state not in DESIRED_STATES:
            raise ValueError(f"desired state {state!r} is not one of {', '.join(DESIRED_STATES)}")
        job = self._key("job", name, "object")
        result = await self.client.txn(
            compare=[Compare.create_revision(job) > 0],
            success=[Op.put(self._key("job", name, "target-state"), state)],
        )
        return result.succeeded

    async def destroy_unit(self, name: str) -> bool:
        """Remove the job (object, desired state, target); the content-addressed body may be shared and
        stays. False if the unit did not exist."""
        return (await self.client.delete_prefix(self._key("job", name) + "/")) > 0

    # ------------------------------------------------------------------ scheduling

    async def schedule(self, name: str, machine_id: str) -> bool:
        """Target one unit at a machine (fleet's AttemptScheduleUnit); its assignment follows in the
        engine's next pass. The engine writes whole plans with ``write_plan``."""
        target = self._key("job", name, "target")
        result = await self.client.txn(
            compare=[
                Compare.create_revision(target) == 0,
                Compare.create_revision(self._key("job", name, "object")) > 0,
            ],
            success=[Op.put(target, machine_id)],
        )
        return result.succeeded

    async def unschedule(self, name: str, machine_id: str) -> bool:
        return await self._write_one(self._unscheduling(name, machine_id))

    async def write_plan(
        self, snapshot: RegistrySnapshot, plan: SchedulePlan, assignments: AssignmentPlan
    ) -> int:
        """Write what the engine decided from ``snapshot``: every unscheduling first (a moving unit's old
        target must be gone before its new one is created), then placements with their assignments, then
        the other assignment changes. Returns how many writes failed their conditions (the next pass,
        from a newer snapshot, decides again)."""
        revision = snapshot.cluster.revision
        failed = await self._write_all([self._unscheduling(u.unit, u.machine_id) for u in plan.unschedule])
        failed += await self._write_all([self._placement(a, revision) for a in assignments.placed])
        writes = [self._assignment(a, revision) for a in assignments.put]
        writes += [
            _Write(
                (Compare.mod_revision(self._key("assignments", *key)) == snapshot.assignment_revisions[key],),
                (Op.delete(self._key("assignments", *key)),),
            )
            for key in assignments.delete
        ]
        return failed + await self._write_all(writes)

    def _unscheduling(self, name: str, machine_id: str) -> _Write:
        target = self._key("job", name, "target")
        return _Write(
            (Compare.value(target) == machine_id,),
            (Op.delete(target), Op.delete(self._key("assignments", machine_id, name))),
        )

    def _unchanged_unit(self, name: str, revision: int) -> tuple[Compare, ...]:
        """The unit exists, and neither its body nor its desired state changed after ``revision``."""
        job = self._key("job", name, "object")
        return (
            Compare.create_revision(job) > 0,
            Compare.mod_revision(job) < revision + 1,
            Compare.mod_revision(self._key("job", name, "target-state")) < revision + 1,
        )

    def _placement(self, assignment: Assignment, revision: int) -> _Write:
        target = self._key("job", assignment.unit, "target")
        return _Write(
            (Compare.create_revision(target) == 0, *self._unchanged_unit(assignment.unit, revision)),
            (
                Op.put(target, assignment.machine_id),
                Op.put(self._key("assignments", *assignment.key), assignment.to_json()),
            ),
        )

    def _assignment(self, assignment: Assignment, revision: int) -> _Write:
        if assignment.is_global:
            where = Compare.create_revision(self._key("machines", assignment.machine_id, "object")) > 0
        else:
            where = Compare.value(self._key("job", assignment.unit, "target")) == assignment.machine_id
        return _Write(
            (where, *self._unchanged_unit(assignment.unit, revision)),
            (Op.put(self._key("assignments", *assignment.key), assignment.to_json()),),
        )

    async def report_unschedulable(self, before: dict[str, str] | FrozenMapping, now: dict[str, str]) -> None:
        """Write the reasons that changed since ``before`` and remove the ones that no longer apply."""
        writes = [
            _Write((), (Op.put(self._key("engine", "unschedulable", name), reason),))
            for name, reason in now.items()
            if before.get(name) != reason
        ]
        writes += [
            _Write((), (Op.delete(self._key("engine", "unschedulable", name)),))
            for name in before.keys() - now.keys()
        ]
        await self._write_all(writes)

    async def _write_one(self, write: _Write) -> bool:
        return (await self.client.txn(compare=write.compare, success=write.ops)).succeeded

    async def _write_all(self, writes: list[_Write]) -> int:
        """Send ``writes`` in as few transactions as etcd's limits allow, a few in flight; a transaction
        that fails its conditions is retried write by write. Returns how many writes failed."""
        batches: list[list[_Write]] = []
        compares = ops = 0
        for write in writes:
            if not batches or compares + len(write.compare) > _TXN_OPS or ops + len(write.ops) > _TXN_OPS:
                batches.append([])
                compares = ops = 0
            batches[-1].append(write)
            compares += len(write.compare)
            ops += len(write.ops)
        semaphore = asyncio.Semaphore(_TXNS_IN_FLIGHT)

        async def send(batch: list[_Write]) -> int:
            async with semaphore:
                compare = [c for w in batch for c in w.compare]
                result = await self.client.txn(compare=compare, success=[op for w in batch for op in w.ops])
            if result.succeeded:
                return 0
            if len(batch) == 1:
                return 1
            return sum(await asyncio.gather(*(send([write]) for write in batch)))

        return sum(await asyncio.gather(*(send(batch) for batch in batches)))

    # ------------------------------------------------------------------ machines and states

    async def register_machine(self, machine: Machine, lease_id: int) -> None:
        body = {"ID": machine.id, "PublicIP": machine.public_ip, "Metadata": dict(machine.metadata),
                "Version": machine.version}  # fmt: skip
        await self.client.put(self._key("machines", machine.id, "object"), json.dumps(body), lease=lease_id)

    async def set_machine_metadata(self, machine_id: str, key: str, value: str | None) -> None:
        path = self._key("machines", machine_id, "metadata", key)
        if value is None:
            await self.client.delete(path)
        else:
            await self.client.put(path, value)

    async def publish_state(
        self, state: UnitState, machine: Machine, fleet_state: str, lease_id: int
    ) -> None:
        await self.publish_states([(state, fleet_state)], machine, lease_id)

    async def publish_states(
        self, states: Iterable[tuple[UnitState, str]], machine: Machine, lease_id: int
    ) -> None:
        """Write ``states/<name>/<machine>`` for each (state, fleet state) under the machine's lease, in
        as few transactions as etcd allows."""
        machine_state = {"ID": machine.id, "PublicIP": machine.public_ip, "Metadata": dict(machine.metadata),
                         "Version": machine.version}  # fmt: skip
        writes = []
        for state, fleet_state in states:
            body = {
                "loadState": state.load_state,
                "activeState": state.active_state,
                "subState": state.sub_state,
                "machineState": machine_state,
                "unitHash": state.hash,
                "fleetState": fleet_state,
            }
            key = self._key("states", state.name, machine.id)
            writes.append(_Write((), (Op.put(key, json.dumps(body), lease=lease_id),)))
        await self._write_all(writes)

    async def remove_state(self, name: str, machine_id: str) -> None:
        await self.remove_states([name], machine_id)

    async def remove_states(self, names: Iterable[str], machine_id: str) -> None:
        await self._write_all([_Write((), (Op.delete(self._key("states", n, machine_id)),)) for n in names])

    # ------------------------------------------------------------------ the engine's leadership

    async def campaign(self, machine_id: str, lease_id: int) -> bool:
        """Become the engine leader unless someone is (fleet's lease/engine-leader, held by a lease)."""
        key = self._key("lease", "engine-leader")
        body = json.dumps({"MachineID": machine_id, "Version": ENGINE_VERSION})
        result = await self.client.txn(
            compare=[Compare.create_revision(key) == 0], success=[Op.put(key, body, lease=lease_id)],
            failure=[Op.get(key)],
        )  # fmt: skip
        if result.succeeded:
            return True
        return False

    async def resign(self, lease_id: int) -> None:
        await self.client.lease_revoke(lease_id)

    # ------------------------------------------------------------------ changes

    async def changed(self, directory: str = "") -> AsyncIterator[int]:
        """Yield a revision whenever anything under ``directory`` of the registry (e.g. ``job``,
        ``assignments/<machine>``; empty for all of it) changed since the caller last looked, coalesced.
        Callers in one process watching the same directory share one watch."""
        feed = self._feeds.get(directory)
        if feed is None:
            prefix = self._dir(directory) if directory else self.prefix
            feed = self._feeds[directory] = _ChangeFeed(self.client, prefix)
        async for revision in feed.subscribe():
            yield revision


class RegistryMirror:
    """What the engine plans from — jobs, machines, the leader key, the engine's notes, assignments —
    read once and then kept current from one watch of the registry, so an engine pass costs the changes
    since the last one instead of a read of the whole registry (40,000 keys for 10,000 units).

    The copy is exact at ``revision``, the revision of the last event applied: the watch delivers events
    in revision order, a transaction's events together. Writes made from it are conditional on nothing
    having changed after that revision (``Registry.write_plan``), so a copy that lags only fails writes,
    never makes wrong ones. Use as ``async with registry.mirror() as mirror``; ``changes()`` yields after
    each applied batch that touched jobs or machines (what should wake the engine)."""

    _DIRS = ("job/", "machines/", "lease/", "engine/", "assignments/")
    _WAKE = ("job/", "machines/")

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._prefix = registry.prefix.encode()
        self._kept_dirs = tuple(d.encode() for d in self._DIRS)
        self._wake_dirs = tuple(d.encode() for d in self._WAKE)
        self._kvs: dict[bytes, KeyValue] = {}
        self.revision = 0
        self._ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RegistryMirror:
        self._task = asyncio.ensure_future(self._follow())
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientError):
                await self._task

    def _kept(self, key: bytes) -> bool:
        return key[len(self._prefix) :].startswith(self._kept_dirs)

    async def _follow(self) -> None:
        client = self._registry.client
        while True:
            try:
                ops = [Op.get(self._registry.prefix + d, prefix=True) for d in self._DIRS]
                result = await client.txn(success=ops)
                self._kvs = {kv.key: kv for r in result.responses for kv in r.kvs}
                revision = self.revision = result.revision
                self._ready.set()
                self._changed.set()
                async for response in client.watch_prefix(self._registry.prefix, start_revision=revision + 1):
                    self._apply(response.events)
            except (TimeoutError, ClientError) as error:  # compacted, or the store is gone: read again
                self._ready.clear()
                logging.getLogger("flotilla.fleet.engine").warning(
                    "registry mirror: %s; reading again", error
                )
                await asyncio.sleep(0.5)

    def _apply(self, events) -> None:
        wake = False
        for event in events:
            key = event.kv.key
            self.revision = max(self.revision, event.kv.mod_revision)
            if not self._kept(key):
                continue
            if event.type == "PUT":
                self._kvs[key] = event.kv
            else:
                self._kvs.pop(key, None)
            wake = wake or key[len(self._prefix) :].startswith(self._wake_dirs)
        if wake:
            self._changed.set()

    async def changes(self) -> AsyncIterator[int]:
        while True:
            await self._changed.wait()
            self._changed.clear()
            yield self.revision

    async def snapshot(self, timeout_s: float = 5.0) -> RegistrySnapshot:
        """The engine's snapshot from the copy (waiting up to ``timeout_s`` for the first read)."""
        async with asyncio.timeout(timeout_s):
            await self._ready.wait()
        return await self._registry._decode_with_bodies(list(self._kvs.values()), self.revision)


class _ChangeFeed:
    """One watch of a directory, shared by every subscriber in the process while there is one."""

    def __init__(self, client: EtcdClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self.revision = 0
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._subscribers = 0

    async def _run(self) -> None:
        while True:
            try:
                _, start = await self._client.get_prefix(self._prefix, keys_only=True, limit=1)
                self._publish(start)
                async for response in self._client.watch_prefix(self._prefix, start_revision=start + 1):
                    if response.events:
                        self._publish(response.revision)
            except (TimeoutError, ClientError):
                await asyncio.sleep(1.0)

    def _publish(self, revision: int) -> None:
        self.revision = max(self.revision, revision)
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def subscribe(self) -> AsyncIterator[int]:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        self._subscribers += 1
        seen = -1
        try:
            while True:
                if self.revision > seen:
                    seen = self.revision
                    yield seen
                    continue
                await self._event.wait()
        finally:
            self._subscribers -= 1
            if self._subscribers == 0 and self._task is not None:
                self._task.cancel()
                self._task = None


def _json(text: str | bytes) -> dict:
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}

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

Guarantees each method needs from the store (STYLE 6):
- ``create_unit`` is an atomic create of ``job/<name>/object`` (fails if the unit exists);
- ``schedule`` is an atomic create of ``job/<name>/target`` (a unit never gets two targets);
- ``unschedule`` is a compare-and-delete on the target's value (only the machine it names);
- ``campaign`` is an atomic create of the leader key under the candidate's lease; leadership ends when
  that lease does;
- ``snapshot`` is one range read, so every value in it is from the same revision.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from flotilla.client import ClientError, Compare, EtcdClient, KeyValue, Op
from flotilla.fleet.model import DESIRED_STATES, ClusterSnapshot, FrozenMapping, Machine, Unit, UnitState

__all__ = ["DEFAULT_PREFIX", "ENGINE_VERSION", "Registry", "RegistrySnapshot", "StateRecord"]

DEFAULT_PREFIX = "/_coreos.com/fleet/"
ENGINE_VERSION = 1


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


class Registry:
    def __init__(self, client: EtcdClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self._parsed: dict[tuple[str, str], Unit] = {}  # (name, hash) -> parsed unit; unit text is immutable
        self._inflight: asyncio.Future[RegistrySnapshot] | None = None
        self._feed: _ChangeFeed | None = None

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    # ------------------------------------------------------------------ reading

    async def snapshot(self) -> RegistrySnapshot:
        """One consistent read. Callers asking while a read is in flight share it (single flight): many
        agents in one process, woken by the same change, cost one range instead of one each."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._read_snapshot())
        return await asyncio.shield(self._inflight)

    async def _read_snapshot(self) -> RegistrySnapshot:
        kvs, revision = await self.client.get_prefix(self.prefix)
        return self._decode(kvs, revision)

    def _decode(self, kvs: Iterable[KeyValue], revision: int) -> RegistrySnapshot:
        bodies: dict[str, str] = {}
        jobs: dict[str, dict[str, str]] = {}
        machines: dict[str, dict] = {}
        api_metadata: dict[str, dict[str, str]] = {}
        states: list[tuple[str, str, dict]] = []
        unschedulable: dict[str, str] = {}
        leader = None
        cut = len(self.prefix)
        for kv in kvs:
            parts = kv.key.decode("utf-8", "replace")[cut:].split("/")
            value = kv.value.decode("utf-8", "replace")
            if parts[0] == "unit" and len(parts) == 2:
                bodies[parts[1]] = _json(value).get("Raw", "")
            elif parts[0] == "job" and len(parts) == 3:
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
            if unit_hash not in bodies or desired not in DESIRED_STATES:
                errors[name] = (
                    f"job {name} names unit body {unit_hash or '(none)'} that is missing or invalid"
                )
                continue
            unit = self._unit(name, unit_hash, bodies[unit_hash], desired, errors)
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
            cluster, tuple(records), leader, FrozenMapping(errors), FrozenMapping(unschedulable)
        )

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
        kv = await self.client.get(self._key("unit", unit_hash))
        return None if kv is None else _json(kv.value.decode()).get("Raw")

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
        return await self.client.compare_and_delete(self._key("job", name, "target"), machine_id)

    async def report_unschedulable(self, before: dict[str, str] | FrozenMapping, now: dict[str, str]) -> None:
        """Write the reasons that changed since ``before`` and remove the ones that no longer apply."""
        for name, reason in now.items():
            if before.get(name) != reason:
                await self.client.put(self._key("engine", "unschedulable", name), reason)
        for name in before.keys() - now.keys():
            await self.client.delete(self._key("engine", "unschedulable", name))

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
        body = {
            "loadState": state.load_state,
            "activeState": state.active_state,
            "subState": state.sub_state,
            "machineState": {"ID": machine.id, "PublicIP": machine.public_ip,
                             "Metadata": dict(machine.metadata), "Version": machine.version},
            "unitHash": state.hash,
            "fleetState": fleet_state,
        }  # fmt: skip
        await self.client.put(self._key("states", state.name, machine.id), json.dumps(body), lease=lease_id)

    async def remove_state(self, name: str, machine_id: str) -> None:
        await self.client.delete(self._key("states", name, machine_id))

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

    async def changed(self) -> AsyncIterator[int]:
        """Yield a revision whenever the registry changed since the caller last looked (coalesced). Every
        caller in this process shares one watch: a hundred in-process agents are one stream, not a hundred
        each woken by every event (fleet's own scaling problem)."""
        if self._feed is None:
            self._feed = _ChangeFeed(self)
        async for revision in self._feed.subscribe():
            yield revision

    async def changes(self, start_revision: int) -> AsyncIterator[int]:
        """Yield the revision of every change under the prefix from ``start_revision`` on."""
        async for response in self.client.watch_prefix(self.prefix, start_revision=start_revision):
            if response.events:
                yield response.revision


class _ChangeFeed:
    """One watch of the registry, shared by every subscriber in the process while there is one."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self.revision = 0
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._subscribers = 0

    async def _run(self) -> None:
        while True:
            try:
                start = (await self._registry.snapshot()).cluster.revision
                self._publish(start)
                async for revision in self._registry.changes(start + 1):
                    self._publish(revision)
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

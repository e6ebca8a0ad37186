"""fleet's scheduling vocabulary as immutable values: machines, units with their desired state and
[X-Fleet] options, the unit states agents publish, and one snapshot of the cluster.

These are what the registry reads out of the store and what the pure planners (``planner``,
``agent_plan``) take in. Everything is frozen and hashable so a snapshot can be compared, cached and
replayed; no value here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from flotilla.units import (
    FleetOptions,
    fleet_options,
    parse_unit_name,
    parse_unit_text_fleet,
    unit_hash,
)

# fleet's job states (job/job.go): a unit is known, loaded into systemd, or started.
DESIRED_STATES = ("inactive", "loaded", "launched")
SHORT_ID_LENGTH = 8  # fleet's MachineState.ShortID; also what MachineID= may name

K = TypeVar("K")
V = TypeVar("V")


class FrozenMapping(Mapping[K, V], Generic[K, V]):
    """A read-only, hashable dict, so mappings can live inside frozen dataclasses. Equality is a dict's
    (order does not count); iteration keeps the order the pairs were given in."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._data: dict[K, V] = dict(data)
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"


def _frozen(mapping: Mapping[K, V] | Iterable[tuple[K, V]]) -> FrozenMapping[K, V]:
    return mapping if isinstance(mapping, FrozenMapping) else FrozenMapping(mapping)


def _check_desired_state(state: str, where: str) -> None:
    if state not in DESIRED_STATES:
        raise ValueError(f"{where}: desired state {state!r} is not one of {', '.join(DESIRED_STATES)}")


@dataclass(frozen=True)
class Machine:
    """One fleet agent as its presence key describes it (``machines/<id>/object``). ``metadata`` accepts
    any mapping or pairs and is stored as a hashable ``FrozenMapping``."""

    id: str
    public_ip: str = ""
    metadata: Mapping[str, str] = field(default_factory=FrozenMapping)
    version: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen(self.metadata))

    @property
    def short_id(self) -> str:
        return self.id[:SHORT_ID_LENGTH]

    def matches_id(self, machine_id: str) -> bool:
        """fleet's MatchID: the full ID or the 8-character short ID both name this machine."""
        return machine_id in (self.id, self.short_id)


@dataclass(frozen=True)
class Unit:
    """A unit in the registry: its text, fleet's hash of it, the desired state and its parsed [X-Fleet]
    options (with ``%n %N %p %i`` expanded for ``name``, as fleet's job.Requirements does)."""

    name: str
    hash: str
    text: str
    desired_state: str
    options: FleetOptions = field(default_factory=FleetOptions)

    def __post_init__(self) -> None:
        _check_desired_state(self.desired_state, f"unit {self.name}")

    @classmethod
    def from_text(cls, name: str, text: str, desired_state: str = "inactive") -> Unit:
        """Parse ``text`` once, with go-systemd's parser as fleetctl does, so the hash is fleet's.
        Raises UnitError (a bad name or unit text) and ValueError (an unknown desired state)."""
        parse_unit_name(name)
        unit_file = parse_unit_text_fleet(text, path=name)
        return cls(name, unit_hash(unit_file), text, desired_state, fleet_options(unit_file, name))

    @property
    def is_global(self) -> bool:
        return self.options.global_

    @property
    def is_template(self) -> bool:
        """``foo@.service``: a template is never run itself, only its instances are."""
        stem = self.name.rpartition(".")[0]
        return stem.endswith("@")

    def with_desired_state(self, desired_state: str) -> Unit:
        return Unit(self.name, self.hash, self.text, desired_state, self.options)


@dataclass(frozen=True)
class UnitState:
    """What an agent publishes for a unit it runs (``states/<name>/<machine>``): systemd's LOAD, ACTIVE
    and SUB columns and the hash of the unit file it loaded."""

    name: str
    machine_id: str
    load_state: str
    active_state: str
    sub_state: str
    hash: str


@dataclass(frozen=True)
class ClusterSnapshot:
    """One consistent read of the registry at ``revision``: live machines, every unit, and ``targets``
    (unit name -> machine id) for scheduled non-global units. The planner reads nothing else."""

    machines: tuple[Machine, ...] = ()
    units: tuple[Unit, ...] = ()
    targets: Mapping[str, str] = field(default_factory=FrozenMapping)
    revision: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "machines", tuple(self.machines))
        object.__setattr__(self, "units", tuple(self.units))
        object.__setattr__(self, "targets", _frozen(self.targets))
        for kind, names in (
            ("machine", [m.id for m in self.machines]),
            ("unit", [u.name for u in self.units]),
        ):
            if len(set(names)) != len(names):
                duplicates = sorted({n for n in names if names.count(n) > 1})
                raise ValueError(f"snapshot at revision {self.revision} lists {kind} {duplicates[0]} twice")

    def machine(self, machine_id: str) -> Machine | None:
        return next((m for m in self.machines if m.id == machine_id), None)

    def unit(self, name: str) -> Unit | None:
        return next((u for u in self.units if u.name == name), None)

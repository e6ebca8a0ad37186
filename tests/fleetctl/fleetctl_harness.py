"""A real store for fleetctl's tests, and the engine's and agents' part played by the test itself.

The store is a `flotilla etcd` member from the integration helpers. Each test gets its own key prefix, so
tests share one member. fleetctl runs in-process through ``flotilla.fleetctl.run`` on a worker thread (it
owns its event loop), while the test writes machines, targets and unit states through the ``Registry`` on
its own loop — so a blocking ``fleetctl start`` sees the "engine" act while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from processes import MemberProcess, start_member  # noqa: E402

from flotilla.client import EtcdClient  # noqa: E402
from flotilla.fleet.model import Machine, UnitState  # noqa: E402
from flotilla.fleet.registry import Registry  # noqa: E402
from flotilla.fleetctl import run  # noqa: E402

__all__ = [
    "SAFETY_TIMEOUT_S", "FleetctlResult", "MemberProcess", "Store", "fleet_api", "run_async", "run_fleetctl",
    "start_member",
]  # fmt: skip

SAFETY_TIMEOUT_S = 45  # a hung test fails instead of hanging the suite; not a performance bound
_prefixes = itertools.count(1)


@dataclass
class FleetctlResult:
    code: int
    out: str
    err: str


def run_fleetctl(argv: list[str], env: dict[str, str] | None = None) -> FleetctlResult:
    out, err = io.StringIO(), io.StringIO()
    code = run(argv, env=env or {}, out=out, err=err)
    return FleetctlResult(code, out.getvalue(), err.getvalue())


@dataclass
class Store:
    """One test's view of the shared member: its prefix, a registry on it, and fleetctl pointed at it."""

    member: MemberProcess
    prefix: str = field(default_factory=lambda: f"/fleetctl-test-{next(_prefixes)}/")
    client: EtcdClient | None = None
    registry: Registry | None = None
    lease_id: int = 0
    machines: dict[str, Machine] = field(default_factory=dict)

    async def __aenter__(self) -> Store:
        self.client = EtcdClient([self.member.endpoint], timeout_s=10)
        self.registry = Registry(self.client, self.prefix)
        self.lease_id = (await self.client.lease_grant(300)).id
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.client.lease_revoke(self.lease_id)
        await self.client.delete_prefix(self.prefix)
        await self.client.close()

    def argv(self, *args: str) -> list[str]:
        return [
            "--driver=etcd",
            f"--endpoint={self.member.endpoint}",
            f"--etcd-key-prefix={self.prefix}",
            *args,
        ]

    async def fleetctl(self, *args: str, env: dict[str, str] | None = None) -> FleetctlResult:
        return await asyncio.to_thread(run_fleetctl, self.argv(*args), env)

    async def fleetctl_api(self, endpoint: str, *args: str) -> FleetctlResult:
        """fleetctl with its default driver (fleet's HTTP API) at ``endpoint``."""
        return await asyncio.to_thread(run_fleetctl, [f"--endpoint={endpoint}", *args], None)

    # ---- the agents' and the engine's part ----

    async def add_machine(
        self, machine_id: str, ip: str = "", metadata: dict[str, str] | None = None
    ) -> Machine:
        machine = Machine(machine_id, ip, metadata or {}, "0.1.0")
        await self.registry.register_machine(machine, self.lease_id)
        self.machines[machine_id] = machine
        return machine

    async def wait_desired(self, name: str, state: str) -> None:
        while True:
            unit = (await self.registry.snapshot()).cluster.unit(name)
            if unit is not None and unit.desired_state == state:
                return
            await asyncio.sleep(0.05)

    async def run_unit(
        self, name: str, machine_id: str, active: str = "active", sub: str = "running"
    ) -> None:
        """What engine and agent do for a started unit: target it at the machine, report it launched."""
        snapshot = await self.registry.snapshot()
        unit = snapshot.cluster.unit(name)
        if name not in snapshot.cluster.targets:
            await self.registry.schedule(name, machine_id)
        await self.publish(name, machine_id, unit.hash, "launched", active, sub)

    async def publish(self, name: str, machine_id: str, unit_hash: str, fleet_state: str,
                      active: str = "active", sub: str = "running") -> None:  # fmt: skip
        state = UnitState(name, machine_id, "loaded", active, sub, unit_hash)
        await self.registry.publish_state(state, self.machines[machine_id], fleet_state, self.lease_id)


def run_async(coro):
    return asyncio.run(asyncio.wait_for(coro, SAFETY_TIMEOUT_S))


@contextlib.asynccontextmanager
async def fleet_api(store: Store, *, token_limit: int = 100):
    """fleet's HTTP API v1 over the store's registry on a fresh unix socket; yields its ``unix://`` URL."""
    from flotilla.fleet.api import create_app, serve_api

    directory = tempfile.mkdtemp(prefix="fleetctl-api-", dir="/tmp")  # unix socket paths are short
    path = os.path.join(directory, "fleet.sock")
    try:
        app = create_app(store.registry, token_limit=token_limit, version="0.1.0")
        async with serve_api(app, unix_path=path, tcp=None):
            yield f"unix://{path}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)

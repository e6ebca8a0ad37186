"""fleet's engine: one leader at a time places units on machines.

Leadership is a key created under a lease (``Registry.campaign``); the leader keeps the lease alive and
stops leading the moment the lease is lost. While it leads it keeps a copy of the registry from one
watch (``RegistryMirror``) and reconciles on every change of units and machines (debounced) and at least
every ``reconcile_interval_s``: take a snapshot of the copy, plan
with the pure ``plan_schedule`` and ``plan_assignments``, write both (every unschedule before any
schedule), report one line when it did something (STYLE 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from flotilla.client import ClientError
from flotilla.fleet.assignments import plan_assignments
from flotilla.fleet.loops import reconcile_until, sleep_or, until_first
from flotilla.fleet.planner import SchedulePlan, plan_schedule
from flotilla.fleet.registry import Registry, RegistryMirror

__all__ = ["Engine"]

log = logging.getLogger("flotilla.fleet.engine")


class Engine:
    def __init__(
        self,
        registry: Registry,
        machine_id: str,
        *,
        reconcile_interval_s: float = 2.0,
        lease_ttl_s: int = 2,
        campaign_interval_s: float = 0.5,
    ) -> None:
        self.registry = registry
        self.machine_id = machine_id
        self.reconcile_interval_s = reconcile_interval_s
        # fleet's leader lease lasted five reconcile intervals (10 s): a dead leader's machine then kept its
        # units unplaced that long. Ours lasts as long as a machine's presence, and the others campaign
        # every campaign_interval_s, so a new leader is there by the time the dead machine's lease expires.
        self.lease_ttl_s = lease_ttl_s
        self.campaign_interval_s = campaign_interval_s
        self.is_leader = asyncio.Event()
        self.last_plan: SchedulePlan | None = None
        self._reported: dict[str, str] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Campaign, lead while the lease lives, campaign again; until ``stop``."""
        client = self.registry.client
        while not stop.is_set():
            try:
                lease = await client.lease_grant(self.lease_ttl_s)
                # Keep the lease alive only once it holds leadership: a losing candidate revokes it at
                # once, and a keep-alive running meanwhile would report that revocation as a lost lease.
                if not await self.registry.campaign(self.machine_id, lease.id):
                    await client.lease_revoke(lease.id)
                    await sleep_or(stop, self.campaign_interval_s)
                    continue
                lost_reason = ""
                async with client.keep_alive(lease.id, ttl_s=lease.ttl_s) as keepalive:
                    log.info("engine %s: leading (lease %x)", self.machine_id[:8], lease.id)
                    self.is_leader.set()
                    try:
                        await until_first(stop.wait, keepalive.lost.wait, lambda: self._lead(stop))
                    finally:
                        self.is_leader.clear()
                        lost_reason = keepalive.reason if keepalive.lost.is_set() else ""
                with contextlib.suppress(ClientError, asyncio.TimeoutError):
                    await client.lease_revoke(lease.id)  # hand over at once, not after a TTL
                if lost_reason:
                    log.warning("engine %s: lost leadership: %s", self.machine_id[:8], lost_reason)
                continue
            except (TimeoutError, ClientError) as error:
                log.warning("engine %s: store unavailable: %s", self.machine_id[:8], error)
            await sleep_or(stop, self.campaign_interval_s)

    async def _lead(self, stop: asyncio.Event) -> None:
        async with self.registry.mirror() as mirror:
            await reconcile_until(
                stop, lambda: self.reconcile(mirror), changes=(mirror.changes,),
                interval_s=self.reconcile_interval_s, log=log, who="engine",
            )  # fmt: skip

    async def reconcile(self, mirror: RegistryMirror | None = None) -> SchedulePlan:
        """One pass: from ``mirror`` (the leader's copy of the registry) or, without one, a fresh read."""
        snapshot = await (mirror.snapshot() if mirror is not None else self.registry.engine_snapshot())
        plan = plan_schedule(snapshot.cluster)
        assignments = plan_assignments(snapshot.cluster, plan, snapshot.assignments)
        failed = 0
        if plan.unschedule or plan.schedule or assignments:
            failed = await self.registry.write_plan(snapshot, plan, assignments)
        reasons = dict(plan.unschedulable)
        await self.registry.report_unschedulable(snapshot.unschedulable, reasons)
        if plan.schedule or plan.unschedule or reasons != self._reported:
            note = f", {failed} writes stale (next pass decides again)" if failed else ""
            log.info("engine: %s (revision %d%s)", plan.summary(), snapshot.cluster.revision, note)
        self._reported = reasons
        self.last_plan = plan
        return plan

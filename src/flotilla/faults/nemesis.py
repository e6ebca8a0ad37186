"""Faults chosen from a seed and applied to a running cluster, each healed before the next:
kill -9 of the leader or a follower (then a restart with its data), SIGSTOP/SIGCONT, leadership moves,
a follower replaced by a new member with a wiped data directory (member remove + add + join), and — with
members in network namespaces — the leader isolated or a minority cut off."""

from __future__ import annotations

import random
import time

from flotilla.etcd.api import rpc_pb2

from .cluster import ProcessCluster
from .partition import Partitions

__all__ = ["FAULTS", "Nemesis"]

FAULTS = (
    "kill-leader",
    "kill-follower",
    "pause-leader",
    "pause-follower",
    "move-leader",
    "replace-follower",
    "partition-leader",
    "partition-minority",
)
NETWORK_FAULTS = frozenset({"partition-leader", "partition-minority"})


class Nemesis:
    def __init__(self, cluster: ProcessCluster, seed: int, faults: tuple[str, ...] = FAULTS) -> None:
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.partitions = Partitions(cluster) if cluster.netns else None
        self.faults = tuple(f for f in faults if self.partitions is not None or f not in NETWORK_FAULTS)
        self.applied: list[str] = []
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def run(self, seconds: float) -> None:
        """Apply faults until ``seconds`` pass (blocking: run it in a thread beside the workload)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stop:
            self._sleep(self.rng.uniform(0.5, 1.5))
            if time.monotonic() >= deadline or self._stop:
                break
            fault = self.rng.choice(self.faults)
            self.applied.append(self._apply(fault))
        self.heal()

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._stop:
            time.sleep(min(0.05, end - time.monotonic()))

    def _apply(self, fault: str) -> str:
        cluster = self.cluster
        leader = cluster.leader()
        followers = [m for m in cluster.members if m is not leader]
        hold = self.rng.uniform(0.5, 2.5)
        if fault in ("kill-leader", "kill-follower"):
            victim = leader if fault == "kill-leader" else self.rng.choice(followers)
            cluster.kill(victim)
            self._sleep(hold)
            cluster.restart(victim)
            return f"{fault} {victim.name} for {hold:.1f}s"
        if fault in ("pause-leader", "pause-follower"):
            victim = leader if fault == "pause-leader" else self.rng.choice(followers)
            cluster.pause(victim)
            self._sleep(hold)
            cluster.resume(victim)
            return f"{fault} {victim.name} for {hold:.1f}s"
        if fault == "move-leader":
            target = self.rng.choice(followers)
            request = rpc_pb2.MoveLeaderRequest(targetID=cluster.member_id(target))
            try:
                cluster._call([leader], "Maintenance", "MoveLeader", request, timeout_s=5)
            except Exception as error:  # noqa: BLE001 - a leader change meanwhile is not a failure
                return f"move-leader to {target.name} refused ({str(error)[:60]})"
            return f"move-leader {leader.name} -> {target.name}"
        if fault == "replace-follower":
            victim = self.rng.choice(followers)
            fresh = cluster.replace(victim)
            return f"replace-follower {victim.name} -> {fresh.name} (wiped, re-added)"
        if fault == "partition-leader":
            self.partitions.isolate(leader)
            self._sleep(hold + 1.0)
            self.partitions.heal()
            return f"partition-leader {leader.name} for {hold + 1.0:.1f}s"
        # partition-minority
        size = (len(cluster.members) - 1) // 2
        side = self.rng.sample(cluster.members, size)
        self.partitions.split(side)
        self._sleep(hold + 1.0)
        self.partitions.heal()
        return f"partition-minority {','.join(m.name for m in side)} for {hold + 1.0:.1f}s"

    def heal(self) -> None:
        """Undo everything still in effect: heal the network, resume paused members, restart dead ones."""
        if self.partitions is not None:
            self.partitions.heal()
        for member in self.cluster.members:
            if member.paused:
                self.cluster.resume(member)
        for member in self.cluster.members:
            if not member.running:
                self.cluster.restart(member)

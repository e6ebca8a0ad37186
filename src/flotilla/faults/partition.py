"""Network partitions between members in their own namespaces: a blackhole route in each namespace for
every address it must not reach (no iptables needed). Links are cut in both directions; ``heal`` removes
every route it added."""

from __future__ import annotations

import subprocess

from .cluster import Member, ProcessCluster

__all__ = ["Partitions"]


class Partitions:
    def __init__(self, cluster: ProcessCluster) -> None:
        if not cluster.netns:
            raise ValueError("partitions need members in network namespaces (netns=True)")
        self.cluster = cluster
        self._routes: set[tuple[str, str]] = set()  # (namespace, blackholed address)

    def _blackhole(self, namespace: str, address: str) -> None:
        if (namespace, address) in self._routes:
            return
        subprocess.run(
            ["ip", "netns", "exec", namespace, "ip", "route", "add", "blackhole", f"{address}/32"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        self._routes.add((namespace, address))

    def cut(self, a: Member, b: Member) -> None:
        self._blackhole(a.netns, b.host)
        self._blackhole(b.netns, a.host)

    def isolate(self, member: Member) -> None:
        for other in self.cluster.members:
            if other is not member:
                self.cut(member, other)

    def split(self, side: list[Member]) -> None:
        """Cut every link between ``side`` and the other members."""
        others = [m for m in self.cluster.members if m not in side]
        for a in side:
            for b in others:
                self.cut(a, b)

    def heal(self) -> None:
        for namespace, address in sorted(self._routes):
            subprocess.run(
                ["ip", "netns", "exec", namespace, "ip", "route", "del", "blackhole", f"{address}/32"],
                capture_output=True, timeout=30,
            )  # fmt: skip
        self._routes.clear()

    @property
    def active(self) -> bool:
        return bool(self._routes)

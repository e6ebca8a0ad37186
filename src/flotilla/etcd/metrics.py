"""Prometheus metrics under etcd's names, so existing dashboards and alerts keep working.

State that is cheap to read (leader, sizes, key counts, indexes) is collected at scrape time from the
server; events (fsyncs, backend commits, applied proposals, leader changes) are counted as they happen.
Each member has its own registry: several members may live in one test process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

__all__ = ["Metrics"]

# etcd's disk histograms: 1 ms to ~8 s, doubling.
_DISK_BUCKETS = tuple(0.001 * 2**i for i in range(14))


class Metrics:
    def __init__(self, server) -> None:
        self.server = server
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.wal_fsync = Histogram(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            buckets=_DISK_BUCKETS,
            registry=r,
        )
        self.backend_commit = Histogram(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
            buckets=_DISK_BUCKETS,
            registry=r,
        )
        self.leader_changes = Counter(
            "etcd_server_leader_changes_seen",
            "The number of leader changes seen.",
            registry=r,
        )
        self.proposals_failed = Counter(
            "etcd_server_proposals_failed", "The total number of failed proposals seen.", registry=r
        )
        self.applied = 0
        r.register(_StateCollector(self))

    # --- events -----------------------------------------------------------------------------------
    def on_fsync(self, seconds: float) -> None:
        self.wal_fsync.observe(seconds)

    def on_backend_commit(self, seconds: float) -> None:
        self.backend_commit.observe(seconds)

    def on_leader(self, has_leader: bool) -> None:
        if has_leader:
            self.leader_changes.inc()

    def on_applied(self, count: int) -> None:
        self.applied += count

    def on_proposal_failed(self) -> None:
        self.proposals_failed.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        server = self.metrics.server
        leader = server.leader_id()

        def gauge(
            name: str, doc: str, value: float, labels: dict[str, str] | None = None
        ) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=list(labels) if labels else None)
            family.add_metric(list(labels.values()) if labels else [], value)
            return family

        yield gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.",
                    1 if leader else 0)  # fmt: skip
        yield gauge("etcd_server_is_leader", "Whether or not this member is a leader.",
                    1 if server.is_leader() else 0)  # fmt: skip
        yield gauge("etcd_server_proposals_committed_total",
                    "The total number of consensus proposals committed.",
                    server.storage.memory.hard_state.commit)  # fmt: skip
        yield gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.",
                    server.applied_index)  # fmt: skip
        yield gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit.",
                    len(server._waiters))  # fmt: skip
        yield gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.",
                    server.settings.quota_bytes)  # fmt: skip
        yield gauge("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label "
                    "with current ID.", 1, {"server_id": f"{server.member_id:x}"})  # fmt: skip
        yield gauge("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically "
                    "allocated in bytes.", server.db_size)  # fmt: skip
        yield gauge("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database "
                    "logically in use in bytes.", server.db_size_in_use)  # fmt: skip
        yield gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", len(server.store))
        yield gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.",
                    server.store.revision)  # fmt: skip
        yield gauge("etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.",
                    server.store.compact_revision)  # fmt: skip
        yield gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.",
                    len(server.hub.synced_watchers()) + server.hub.unsynced_count())  # fmt: skip
        yield gauge("etcd_debugging_lease_total", "The number of leases.", len(server.lessor.leases()))

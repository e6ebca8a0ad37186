"""The store member: raft driver, apply loop, backend commits, snapshots, leases and the request API the
gRPC services and the gateway call.

Write path: ``propose`` encodes the request as an ``InternalRaftRequest`` with a unique ID, registers a
future under that ID and queues the bytes in the raft driver; the driver batches, fsyncs and commits;
``apply_entries`` applies each committed request through the ``Applier`` and resolves the future.
Reads: a linearizable read first waits for a ReadIndex to be applied (batched: one raft round serves every
read that arrived meanwhile); a serializable read is served from the local state at once.

The MVCC state lives in memory (``flotilla.mvcc``); every ``backend_commit_interval_s`` its changes, with
the applied raft index, go into the backend in one transaction from a worker thread. A restart loads the
backend and replays only the WAL entries after that index.

The v2 keyspace (``flotilla.v2store``) is separate, as in etcd 3.4: it lives in memory and in the raft
snapshots (their data carries the whole tree at the snapshot's index). A restart loads it from the newest
snapshot and re-applies the v2 entries after it, while the v3 entries the backend holds are skipped. Its
TTLs expire by SYNC entries the leader proposes with its clock reading.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import struct
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

from flotilla.backend import WriteBatch, open_backend
from flotilla.backend.errors import BackendError
from flotilla.etcd import errors
from flotilla.etcd.api import etcdserver_pb2, raft_internal_pb2, rpc_pb2
from flotilla.etcd.apply import Applier, is_txn_read_only
from flotilla.etcd.membership import (
    Member,
    check_add,
    check_promote,
    check_remove,
    check_update,
    decode_change,
    encode_change,
    load_members,
    member_record,
    new_member,
    parse_peer_urls,
    removed_record,
)
from flotilla.etcd.raftnode import NoPeers, RaftNode, Transport
from flotilla.etcd.storage import MemberStorage, member_paths
from flotilla.etcd.v2apply import apply_v2_request
from flotilla.mvcc.lease import Lessor, NotPrimaryError, encode_lease, lease_key
from flotilla.mvcc.store import KeyValueStore
from flotilla.mvcc.watch import WatchHub
from flotilla.raft import (
    NO_LEADER,
    ConfChange,
    ConfChangePending,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    ProposalDropped,
    RawNode,
    ReadState,
    Role,
    Snapshot,
    SoftState,
)
from flotilla.v2store import V2Store

__all__ = ["EtcdServer", "Member", "ServerSettings"]

log = logging.getLogger("flotilla.etcd")

_U64 = struct.Struct(">Q")
_READ_CONTEXT = struct.Struct(">QQ")  # member ID, sequence number
_META_APPLIED = b"consistent_index"
_META_TERM = b"term"
_META_COMPACT = b"finishedCompactRev"
_META_CLUSTER = b"cluster"
_META_FOUNDERS = b"founding_members"  # how many members founded the cluster (the v2 indexes they spent)
# A member's attributes travel as a v2 request, as in etcd, with a method no client request has (etcd
# tells them apart by path: its keys live under /1, ours at the root).
_PUBLISH = "PUBLISH"
_MEMBERS_PREFIX = "/0/members/"
SNAPSHOT_CATCH_UP_ENTRIES = 5000  # etcd keeps this many entries behind a snapshot for slow followers
CONF_CHANGE_RETRY_S = 0.02  # retry period of a membership change refused while an earlier one applies
DEFAULT_QUOTA_BYTES = 2 * 1024**3
ALARM_NOSPACE = rpc_pb2.NOSPACE
# InternalRaftRequest field -> the Applier method that applies it, for requests with no extra checks.
_APPLIER_METHODS = {
    "delete_range": "delete_range",
    "range": "range",
    "compaction": "compact",
    "lease_revoke": "lease_revoke",
    "lease_checkpoint": "lease_checkpoint",
}


@dataclass
class ServerSettings:
    """What the member needs from its configuration (the CLI builds it from etcd's flags)."""

    name: str
    data_dir: Path
    member_id: int
    cluster_id: int
    members: list[Member]
    wal_dir: Path | None = None
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000
    snapshot_count: int = 100_000
    max_snapshots: int = 5
    quota_backend_bytes: int = 0
    max_request_bytes: int = 1_572_864
    max_txn_ops: int = 128
    backend_commit_interval_s: float = 0.1
    backend_batch_limit: int = 10_000
    lease_checkpoint_interval_s: float = 15.0  # bounds how much a leader change can extend a lease
    watch_progress_notify_interval_s: float = 600.0
    request_timeout_s: float = 0.0  # 0: etcd's 5 s + 2 election timeouts
    v2_history_size: int = 1000  # v2 events a waitIndex can reach back (etcd: a fixed 1000)
    v2_sync_interval_s: float = 0.5  # how often the leader expires v2 TTL nodes (etcd: 500 ms)
    advertise_client_urls: tuple[str, ...] | None = None  # None: this member's entry in ``members`` has them
    listen_peer_urls: tuple[str, ...] = ()  # none: no peer transport (an in-process single member)
    join_existing: bool = False  # --initial-cluster-state existing: start empty, get the leader's snapshot
    strict_reconfig_check: bool = True
    peer_server_ssl: object = None  # ssl.SSLContext for https:// peer URLs
    peer_client_ssl: object = None
    seed: int | None = None

    @property
    def quota_bytes(self) -> int:
        return self.quota_backend_bytes if self.quota_backend_bytes > 0 else DEFAULT_QUOTA_BYTES

    @property
    def timeout_s(self) -> float:
        return self.request_timeout_s or 5.0 + 2 * self.election_timeout_ms / 1000


class _RequestIds:
    """Unique request IDs, as etcd's idutil: the member's low 16 bits, the start time in ms, a counter."""

    def __init__(self, member_id: int) -> None:
        self._next = ((member_id & 0xFFFF) << 48) | ((int(time.time() * 1000) & 0xFFFFFFFFFF) << 8)

    def next(self) -> int:
        self._next = (self._next + 1) & 0xFFFFFFFFFFFFFFFF
        return self._next


class EtcdServer:
    """One member. Create with ``EtcdServer.open(settings)``; ``run()`` drives it until ``stop()``."""

    def __init__(self, settings: ServerSettings, transport: Transport | None = None) -> None:
        self.settings = settings
        self.member_id = settings.member_id
        self.cluster_id = settings.cluster_id
        self.transport = transport
        self.paths = member_paths(settings.data_dir, settings.wal_dir)
        self.started_at = time.time()
        self._ids = _RequestIds(self.member_id)
        self._waiters: dict[int, asyncio.Future] = {}
        self._deadlines: deque[tuple[float, int]] = deque()  # in time order: every timeout is the same
        self._read_waiters: list[asyncio.Future] = []
        self._read_inflight: dict[bytes, list[asyncio.Future]] = {}
        self._read_applied_waits: list[tuple[int, list[asyncio.Future]]] = []
        self._read_seq = 0
        self.leader_changes = 0
        self.alarms: set[tuple[int, int]] = set()
        self.members: dict[int, Member] = {m.id: m for m in settings.members}
        self.removed: set[int] = set()  # IDs removed from the cluster: refused forever
        self._conf_waiters: dict[int, asyncio.Future] = {}
        self._backend_lock = asyncio.Lock()
        self._snapshotting = False
        self.applied_index = 0
        self.consistent_index = 0
        self.snapshot_index = 0
        self.db_size = 0
        self.db_size_in_use = 0
        self._started = asyncio.Event()
        self._published = asyncio.Event()  # this member's name and client URLs are applied (etcd's readyc)
        self._stopped = False
        self.metrics = None  # set by the member process (flotilla.etcd.metrics.Metrics)
        self._open_state()

    # --- start-up ---------------------------------------------------------------------------------
    def _open_state(self) -> None:
        s = self.settings
        paths = self.paths
        paths.snap.mkdir(parents=True, exist_ok=True)
        self.backend = open_backend(paths.backend)
        self._load_backend_state()
        self.hub = WatchHub(self.store)
        opened = MemberStorage.open(paths) if MemberStorage.exists(paths) else None
        if opened is not None:
            self.storage, recovered = opened
            metadata = json.loads(recovered.metadata)
            self.member_id, self.cluster_id = metadata["member_id"], metadata["cluster_id"]
            self.snapshot_index = recovered.snapshot.index
            self.v2store = self._restore_v2store(recovered.snapshot.data)
            log.info(
                "restarting member %x in cluster %x at commit index %d (backend applied %d, last %d)",
                self.member_id, self.cluster_id, recovered.hard_state.commit, self.consistent_index,
                recovered.last_index,
            )  # fmt: skip
        else:
            metadata = json.dumps({"member_id": self.member_id, "cluster_id": self.cluster_id}).encode()
            voters = set() if s.join_existing else {m.id for m in s.members if not m.is_learner}
            self.storage = MemberStorage.create(paths, metadata, voters)
            self.snapshot_index = 1 if voters else 0
            self.v2store = self._new_v2store()
            batch = WriteBatch()
            for m in s.members:
                member_record(batch, m)
            batch.put("meta", _META_CLUSTER, _U64.pack(self.cluster_id))
            if not s.join_existing:
                batch.put("meta", _META_FOUNDERS, _U64.pack(len(s.members)))
            self.backend.write(batch, sync=True)
            if s.join_existing:
                log.info("starting member %x to join cluster %x", self.member_id, self.cluster_id)
            else:
                log.info("starting member %x in cluster %x", self.member_id, self.cluster_id)
        received = paths.snap / f"{self.snapshot_index:016x}.snap.db"
        if self.consistent_index < self.snapshot_index and received.exists():
            # A crash while installing a leader's snapshot: the WAL recorded it, the backend file that came
            # with it was not yet in place (etcd's recoverSnapshotBackend).
            log.info("installing the backend received with the snapshot at index %d", self.snapshot_index)
            self.backend.close()
            os.replace(received, paths.backend)
            self.backend = open_backend(paths.backend)
            self._load_backend_state()
            self.hub = WatchHub(self.store)
        if self.snapshot_index > 1 and self.consistent_index < self.snapshot_index:
            # The backend must hold at least the state the snapshot stands for: the WAL before it is gone.
            raise BackendError(
                f"the backend {paths.backend} has applied index {self.consistent_index}, older than the "
                f"snapshot at {self.snapshot_index}: the entries in between are no longer in the WAL. "
                "Restore the data directory from a backup, or remove it and re-add the member."
            )
        self.applied_index = max(self.consistent_index, self.snapshot_index)
        self.v2_applied_index = self.snapshot_index  # the last index the v2 tree has applied
        rng = random.Random(s.seed if s.seed is not None else self.member_id ^ time.time_ns())
        config = Config(
            id=self.member_id,
            rng=rng,
            election_timeout_ticks=max(2, s.election_timeout_ms // s.heartbeat_interval_ms),
            heartbeat_interval_ticks=1,
            # Raft replays committed entries from the snapshot on: entries the backend already holds
            # are skipped when applied, conf changes among them still reach raft. (The backend may be
            # ahead of the WAL's commit index: durable entries are applied while their commit is fsynced.)
            applied=self.snapshot_index,
            max_msg_bytes=1 << 20,
        )
        self.node = RawNode(config, self.storage.memory)
        if self.transport is None:
            self.transport = self._make_transport() if s.listen_peer_urls else NoPeers()
        self.raft = RaftNode(
            self.node,
            self.storage,
            self.transport,
            self,
            s.heartbeat_interval_ms / 1000,
            on_fsync=self._on_fsync,
        )
        self._refresh_sizes()

    def _load_backend_state(self) -> None:
        """The v3 keyspace, leases, alarms and membership from the backend (at start-up, and after a
        follower installed its leader's snapshot)."""
        applied_bytes = self.backend.get("meta", _META_APPLIED)
        self.consistent_index = _U64.unpack(applied_bytes)[0] if applied_bytes else 0
        compact_bytes = self.backend.get("meta", _META_COMPACT)
        compact_rev = _U64.unpack(compact_bytes)[0] if compact_bytes else 0
        self.store = KeyValueStore.restore(self.backend.scan("key"), compact_rev)
        self.lessor = Lessor.restore(self.backend.scan("lease"), self._min_lease_ttl_s())
        for kv in self.store.range(b"\0", b"\0").kvs:
            if kv.lease and self.lessor.lookup(kv.lease) is not None:
                self.lessor.attach(kv.lease, kv.key)
        self.alarms = set()
        for key, _ in self.backend.scan("alarm"):
            member_id, alarm = struct.unpack(">QI", key)
            self.alarms.add((member_id, alarm))
        stored_members, self.removed = load_members(self.backend)
        if stored_members:
            self.members = stored_members
        self._member_changes: list[tuple[int, Member | None]] = []
        self.applier = Applier(self.store, self.lessor, self.header, self._on_events)

    def _restore_v2store(self, snapshot_data: bytes) -> V2Store:
        state = json.loads(snapshot_data) if snapshot_data else {}
        v2 = state.get("v2store")
        if v2 is None:
            return self._new_v2store()
        return V2Store.restore(v2.encode(), self.settings.v2_history_size)

    def _new_v2store(self) -> V2Store:
        store = V2Store(self.settings.v2_history_size)
        # etcd 3.4 records membership in the same v2 store (each member's raft attributes and attributes,
        # then the cluster version) before any client write: skip those indexes so a fresh member's
        # first key gets the index a CoreOS tutorial shows. (The founders recorded in the backend, not
        # the flags nor today's members: a restart, or a member that joined later, rebuilds the tree from
        # here and must count what the founders spent.)
        founders = self.backend.get("meta", _META_FOUNDERS)
        for _ in range(2 * (_U64.unpack(founders)[0] if founders else len(self.members)) + 1):
            store.advance_index()
        return store

    def _refresh_sizes(self) -> None:
        self.db_size = self.backend.size_bytes()
        self.db_size_in_use = self.backend.size_in_use_bytes()

    async def _publish_loop(self) -> None:
        """etcd publishes this member's name and client URLs through raft at every start, so every member
        knows where to reach the others' clients; it retries until the update is applied. (Only a change
        is proposed: the v2 indexes this would spend are counted in ``_new_v2store``.)"""
        try:
            await self._publish_attributes()
        finally:
            self._published.set()

    async def _publish_attributes(self) -> None:
        client_urls = self.settings.advertise_client_urls
        if client_urls is None:
            own = next((m for m in self.settings.members if m.id == self.member_id), None)
            if own is None:
                own = next((m for m in self.settings.members if m.name == self.settings.name), None)
            if own is None:
                return
            client_urls = own.client_urls
        name = self.settings.name
        while not self._stopped:
            current = self.members.get(self.member_id)
            if current is None or (current.name, current.client_urls) == (name, client_urls):
                return
            if self.raft.leader_id == NO_LEADER:
                await asyncio.sleep(0.05)
                continue
            attributes = json.dumps({"name": name, "clientURLs": list(client_urls)})
            request = etcdserver_pb2.Request(
                Method=_PUBLISH, Path=f"{_MEMBERS_PREFIX}{self.member_id:x}/attributes", Val=attributes
            )
            try:
                await self.propose("v2", request)
                log.info("published {Name:%s ClientURLs:[%s]} to cluster %x", name, " ".join(client_urls),
                         self.cluster_id)  # fmt: skip
            except errors.EtcdError as error:
                log.warning("failed to publish this member's attributes (%s); retrying", error.message)
                await asyncio.sleep(0.5)

    def _apply_attributes(self, request: etcdserver_pb2.Request) -> None:
        member_hex = request.Path[len(_MEMBERS_PREFIX) :].split("/", 1)[0]
        current = self.members.get(int(member_hex, 16))
        if current is None:
            return  # removed meanwhile
        attributes = json.loads(request.Val)
        updated = replace(
            current, name=attributes.get("name", ""), client_urls=tuple(attributes.get("clientURLs") or ())
        )
        self.members[updated.id] = updated
        self._member_changes.append((updated.id, updated))

    def _min_lease_ttl_s(self) -> int:
        # etcd: a lease must outlive an election, so the minimum TTL is 1.5 election timeouts, rounded up.
        s = self.settings
        return max(1, -(-3 * s.election_timeout_ms // 2000))

    # --- running ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Drive the member until ``stop()``; on return the backend holds everything applied."""
        voters = self.storage.memory.initial_state()[1].voters
        peer_transport = not isinstance(self.transport, NoPeers)
        try:
            if peer_transport:
                from flotilla.etcd.http import make_peer_http_server

                # etcd's peer HTTP endpoints share the peer port (an aiohttp server needs the running loop).
                self.transport.http_server = make_peer_http_server(self)
                await self.transport.start(list(self.settings.listen_peer_urls))
                self._sync_peers()
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                tasks.create_task(self.raft.run())
                tasks.create_task(self._publish_loop())
                tasks.create_task(self._backend_loop())
                tasks.create_task(self._lease_loop())
                tasks.create_task(self._timeout_loop())
                tasks.create_task(self._watch_sync_loop())
                tasks.create_task(self._v2_sync_loop())
                if voters == {self.member_id} or (not voters and len(self.members) == 1):
                    # A cluster of one need not wait an election timeout to elect itself.
                    self.node.campaign()
                    self.raft._wake.set()
        finally:
            if peer_transport:
                await self.transport.stop()
            await self._final_commit()
            self.storage.close()
            self.backend.close()

    def _spawn(self, coroutine) -> None:
        """Background work belongs to the server's task group (and ends with it)."""
        if self._tasks is None or self._stopped:
            coroutine.close()
            return
        self._tasks.create_task(coroutine)

    _tasks: asyncio.TaskGroup | None = None

    async def wait_started(self) -> None:
        """Return once this member knows a leader and has applied its log (ready to serve)."""
        await self._started.wait()

    def stop(self) -> None:
        self._stopped = True
        self.raft.stop()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(errors.stopped())
        self._waiters.clear()

    async def _final_commit(self) -> None:
        try:
            await self._commit_backend(sync=True)
        except Exception:  # noqa: BLE001 - shutting down: the WAL still has everything
            log.exception("final backend commit failed; the WAL will replay it")

    # --- the raft driver's callbacks (flotilla.etcd.raftnode.Applier) -----------------------------
    def on_soft_state(self, soft: SoftState) -> None:
        self.role = soft.role
        if soft.leader_id != self._last_leader:
            self._last_leader = soft.leader_id
            self.leader_since = time.time()
        if soft.leader_id != NO_LEADER:
            self.leader_changes += 1
            log.info("raft: %x elected leader %x at term %d", self.member_id, soft.leader_id, self.raft.term)
        else:
            log.info("raft: %x lost its leader", self.member_id)
        if soft.role == Role.LEADER:
            self.lessor.promote(time.monotonic())
        elif self.lessor.is_primary:
            self.lessor.demote()
        if self.metrics is not None:
            self.metrics.on_leader(soft.leader_id != NO_LEADER)

    def on_ready_done(self) -> None:
        if not self._started.is_set() and self.raft.leader_id != NO_LEADER and self._published.is_set():
            if self.applied_index >= self.storage.memory.hard_state.commit:
                self._started.set()
        if self._read_applied_waits:
            self._release_reads()

    async def apply_snapshot(self, snapshot: Snapshot) -> None:
        """A follower installs its leader's snapshot: the backend file the transport received with it
        replaces the local one; the v2 tree comes from the snapshot's data."""
        received = self.paths.snap / f"{snapshot.index:016x}.snap.db"
        if not received.exists():
            raise BackendError(
                f"the leader's snapshot at index {snapshot.index} arrived without its backend file {received}"
            )
        async with self._backend_lock:
            self.store.take_changes()
            self.lessor.take_changes()
            self.backend.close()
            await asyncio.to_thread(os.replace, received, self.paths.backend)
            self.backend = open_backend(self.paths.backend)
            self._load_backend_state()
        self.hub.replace_history(self.store)
        self.v2store = self._restore_v2store(snapshot.data)
        self.v2_applied_index = snapshot.index
        self.snapshot_index = snapshot.index
        self.applied_index = max(self.consistent_index, snapshot.index)
        self._sync_peers()
        self._refresh_sizes()
        log.info(
            "applied the leader's snapshot at index %d (backend applied %d, %d members)",
            snapshot.index, self.consistent_index, len(self.members),
        )  # fmt: skip

    def _sync_peers(self) -> None:
        """Tell the transport where every other member is (after a start, a change or a snapshot)."""
        if isinstance(self.transport, NoPeers):
            return
        wanted = {m.id: m.peer_urls for m in self.members.values() if m.id != self.member_id}
        for peer_id in set(self._peer_urls) - set(wanted):
            self.transport.remove_peer(peer_id)
        for peer_id, urls in wanted.items():
            known = self._peer_urls.get(peer_id)
            if known is None:
                self.transport.add_peer(peer_id, urls)
            elif known != urls:
                self.transport.update_peer(peer_id, urls)
        self._peer_urls = wanted

    _peer_urls: dict[int, tuple[str, ...]] = {}  # noqa: RUF012 - replaced, never mutated

    def apply_entries(self, entries: list[Entry]) -> None:
        applier = self.applier
        waiters = self._waiters
        parse = raft_internal_pb2.InternalRaftRequest.FromString
        for entry in entries:
            if entry.type == EntryType.CONF_CHANGE:
                self._apply_conf_change(entry)
                continue
            if not entry.data:
                continue  # a new leader's empty entry
            if entry.index <= self.consistent_index:
                # The backend already has it (replay after a restart): only the v2 tree, restored from
                # the snapshot, needs the entries after the snapshot.
                if entry.index > self.v2_applied_index:
                    request = parse(entry.data)
                    if request.HasField("v2") and request.v2.Method != _PUBLISH:
                        apply_v2_request(self.v2store, request.v2, time.time_ns())
                continue
            request = parse(entry.data)
            request_id = request.header.ID
            try:
                result = self._apply_request(applier, request)
            except errors.EtcdError as error:
                result = error
            fut = waiters.pop(request_id, None)
            if fut is not None and not fut.done():
                if isinstance(result, errors.EtcdError):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        if entries[-1].index > self.applied_index:
            self.applied_index = entries[-1].index
        # The v2 tree has now seen every entry raft handed over. (``applied_index`` may be ahead: after a
        # restart it starts at the backend's index, which can pass the WAL's commit index.)
        self.v2_applied_index = max(self.v2_applied_index, entries[-1].index)
        if self.metrics is not None:
            self.metrics.on_applied(len(entries))
        if self.applied_index - self.snapshot_index > self.settings.snapshot_count and not self._snapshotting:
            self._snapshotting = True
            self._spawn(self._snapshot())

    def _apply_request(self, applier: Applier, request) -> object:
        # InternalRaftRequest is not a oneof (etcd's field numbers): the request is its one set field
        # besides the header and the ID.
        kind = ""
        for descriptor, _ in request.ListFields():
            if descriptor.number not in (1, 100):
                kind = descriptor.name
                break
        if kind == "put":
            self._check_space()
            return applier.put(request.put)
        if kind == "txn":
            if self._nospace_alarm() and not is_txn_read_only(request.txn):
                raise errors.no_space()
            return applier.txn(request.txn)
        if kind == "lease_grant":
            self._check_space()
            return applier.lease_grant(request.lease_grant, now_s=time.monotonic())
        if kind == "alarm":
            return self._apply_alarm(request.alarm)
        if kind == "v2":
            if request.v2.Method == _PUBLISH:
                return self._apply_attributes(request.v2)
            return apply_v2_request(self.v2store, request.v2, time.time_ns())
        method = _APPLIER_METHODS.get(kind)
        if method is not None:
            return getattr(applier, method)(getattr(request, kind))
        raise errors.EtcdError(errors.grpc.StatusCode.UNIMPLEMENTED, f"etcdserver: unknown request {kind}")

    def _apply_conf_change(self, entry: Entry) -> None:
        change = ConfChange.decode(entry.data)
        self.node.apply_conf_change(change)
        request_id, member = decode_change(change)
        target = change.node_id
        if change.type == ConfChangeType.REMOVE_NODE:
            self.members.pop(target, None)
            self.removed.add(target)
            self._member_changes.append((target, None))
            log.info("removed member %x from cluster %x", target, self.cluster_id)
        elif member is not None:
            known = target in self.members
            self.members[target] = member
            self._member_changes.append((target, member))
            what = {ConfChangeType.ADD_NODE: "added", ConfChangeType.ADD_LEARNER: "added learner"}
            verb = "updated" if known else what.get(change.type, "added")
            log.info("%s member %x %s in cluster %x", verb, target, list(member.peer_urls), self.cluster_id)
        self._sync_peers()
        fut = self._conf_waiters.pop(request_id, None)
        if fut is not None and not fut.done():
            fut.set_result(sorted(self.members.values(), key=lambda m: m.id))
        if change.type == ConfChangeType.REMOVE_NODE and target == self.member_id and not self._stopped:
            self._spawn(self._leave())

    async def _leave(self) -> None:
        """This member was removed. A leader keeps replicating until another voter leads, so the others
        learn that the change committed; then the member stops, as etcd does."""
        deadline = time.monotonic() + 4 * self.settings.election_timeout_ms / 1000
        while self.is_leader() and time.monotonic() < deadline:
            await asyncio.sleep(self.settings.heartbeat_interval_ms / 1000)
        await asyncio.sleep(2 * self.settings.heartbeat_interval_ms / 1000)
        log.warning("the member has been permanently removed from the cluster")
        log.warning("the data-dir used by this member must be removed")
        self.removed_from_cluster = True
        self.stop()

    removed_from_cluster = False

    def on_read_state(self, read_state: ReadState) -> None:
        waiters = self._read_inflight.pop(read_state.request_ctx, None)
        if waiters:
            self._read_applied_waits.append((read_state.index, waiters))
            self._release_reads()

    def _release_reads(self) -> None:
        applied = self.applied_index
        still = []
        for index, waiters in self._read_applied_waits:
            if index <= applied:
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)
            else:
                still.append((index, waiters))
        self._read_applied_waits = still

    # --- alarms and quota -------------------------------------------------------------------------
    def _nospace_alarm(self) -> bool:
        return any(alarm == ALARM_NOSPACE for _, alarm in self.alarms)

    def _check_space(self) -> None:
        if self._nospace_alarm():
            raise errors.no_space()

    def _apply_alarm(self, r: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        resp = rpc_pb2.AlarmResponse()  # etcd 3.4 sends alarm responses without a header
        if r.action == rpc_pb2.AlarmRequest.GET:
            pass
        elif r.action == rpc_pb2.AlarmRequest.ACTIVATE:
            if r.alarm != rpc_pb2.NONE:
                self.alarms.add((r.memberID, r.alarm))
                resp.alarms.add(memberID=r.memberID, alarm=r.alarm)
                log.warning("alarm %s raised by member %x", rpc_pb2.AlarmType.Name(r.alarm), r.memberID)
            self._alarms_dirty = True
            return resp
        elif r.action == rpc_pb2.AlarmRequest.DEACTIVATE:
            to_clear = {
                (m, a)
                for m, a in self.alarms
                if (r.memberID == 0 or m == r.memberID) and (r.alarm == rpc_pb2.NONE or a == r.alarm)
            }
            for m, a in sorted(to_clear):
                resp.alarms.add(memberID=m, alarm=a)
            self.alarms -= to_clear
            self._alarms_dirty = True
            return resp
        for m, a in sorted(self.alarms):
            if (r.memberID == 0 or m == r.memberID) and (r.alarm == rpc_pb2.NONE or a == r.alarm):
                resp.alarms.add(memberID=m, alarm=a)
        return resp

    _alarms_dirty = False
    _backend_broken = False
    role = Role.FOLLOWER
    leader_since = 0.0  # wall-clock time the current leader became known (v2 stats)
    _last_leader = NO_LEADER

    def quota_exceeded(self, cost: int) -> bool:
        return self.db_size + cost > self.settings.quota_bytes

    # --- the request API --------------------------------------------------------------------------
    def header(self, revision: int) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader(
            cluster_id=self.cluster_id, member_id=self.member_id, revision=revision, raft_term=self.raft.term
        )

    async def propose(self, field_name: str, request, *, cost: int = 0) -> object:
        """Replicate ``request`` (a PutRequest, TxnRequest, ...) and return what applying it gave."""
        if self._stopped:
            raise errors.stopped()
        internal = raft_internal_pb2.InternalRaftRequest()
        request_id = self._ids.next()
        internal.header.ID = request_id
        getattr(internal, field_name).CopyFrom(request)
        data = internal.SerializeToString()
        if len(data) > self.settings.max_request_bytes:
            raise errors.request_too_large()
        if cost and self.quota_exceeded(cost + len(data)):
            if not self._nospace_alarm():
                self._raise_nospace_alarm()
            raise errors.no_space()
        fut = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = fut
        self._deadlines.append((time.monotonic() + self.settings.timeout_s, request_id))
        self.raft.propose(data)
        return await fut

    def _raise_nospace_alarm(self) -> None:
        log.warning("database space exceeded (%d bytes, quota %d)", self.db_size, self.settings.quota_bytes)
        alarm = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=self.member_id, alarm=ALARM_NOSPACE
        )
        self._spawn(self._propose_quietly("alarm", alarm))

    async def _propose_quietly(self, field_name: str, request) -> None:
        try:
            await self.propose(field_name, request)
        except errors.EtcdError as error:
            log.warning("internal %s proposal failed: %s", field_name, error.message)

    async def read_barrier(self) -> None:
        """Wait until this member has applied everything committed before the call (ReadIndex)."""
        if self._stopped:
            raise errors.stopped()
        fut = asyncio.get_running_loop().create_future()
        self._read_waiters.append(fut)
        if len(self._read_waiters) == 1:
            asyncio.get_running_loop().call_soon(self._send_read_index)
        try:
            await asyncio.wait_for(fut, self.settings.timeout_s)
        except TimeoutError:
            raise errors.timeout() from None

    def _send_read_index(self) -> None:
        if not self._read_waiters:
            return
        waiters, self._read_waiters = self._read_waiters, []
        self._read_seq += 1
        # The context must be unique across the cluster (the leader matches answers by it): the sequence
        # number after this member's ID.
        context = _READ_CONTEXT.pack(self.member_id, self._read_seq)
        self._read_inflight[context] = waiters
        self.raft.request_read_index(context)

    async def range(self, r: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        if not r.serializable:
            await self.read_barrier()
        return self.applier.range(r)

    async def txn(self, r: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        if is_txn_read_only(r):
            if not all(op.request_range.serializable for op in (*r.success, *r.failure)) or not (
                r.success or r.failure
            ):
                await self.read_barrier()
            return self.applier.read_txn(r)
        return await self.propose("txn", r, cost=r.ByteSize())

    async def v2_propose(self, request: etcdserver_pb2.Request):
        """A v2 write (or quorum read) through raft: the Event it made, or raises its V2Error."""
        result = await self.propose("v2", request)
        if isinstance(result, Exception):
            raise result
        return result

    def committed_index(self) -> int:
        return self.storage.memory.hard_state.commit

    def lease_renew(self, lease_id: int) -> int:
        """Keep-alive: on the leader (the primary lessor) only."""
        try:
            return self.lessor.renew(lease_id, time.monotonic())
        except NotPrimaryError:
            raise errors.not_leader() from None

    def lease_remaining(self, lease_id: int) -> int:
        return self.lessor.remaining_s(lease_id, time.monotonic())

    # --- watch events -----------------------------------------------------------------------------
    def _on_events(self, events) -> None:
        deliveries = self.hub.notify(events)
        if deliveries:
            revision = self.store.revision
            for watcher, evs in deliveries:
                watcher.tag.deliver(watcher, evs, revision)

    async def _watch_sync_loop(self) -> None:
        while not self._stopped:
            await asyncio.sleep(0.1)
            if self.hub.unsynced_count():
                self.sync_watchers()

    def sync_watchers(self) -> None:
        revision = self.store.revision
        for watcher, evs in self.hub.sync():
            watcher.tag.deliver(watcher, evs, revision)

    # --- background work --------------------------------------------------------------------------
    async def _timeout_loop(self) -> None:
        """Fail requests whose proposal did not apply in time (no leader, lost quorum)."""
        while not self._stopped:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            while self._deadlines and self._deadlines[0][0] <= now:
                _, request_id = self._deadlines.popleft()
                fut = self._waiters.pop(request_id, None)
                if fut is not None and not fut.done():
                    fut.set_exception(errors.timeout())
                    if self.metrics is not None:
                        self.metrics.on_proposal_failed()
            if self._read_waiters or self._read_inflight:
                self._retry_reads()

    def _retry_reads(self) -> None:
        # A ReadIndex request is dropped while there is no leader; ask again for whoever still waits.
        if self.raft.leader_id == NO_LEADER:
            return
        stale = [ctx for ctx in self._read_inflight if _READ_CONTEXT.unpack(ctx)[1] < self._read_seq - 4]
        for ctx in stale:
            self._read_waiters.extend(f for f in self._read_inflight.pop(ctx) if not f.done())
        if self._read_waiters:
            self._send_read_index()

    async def _lease_loop(self) -> None:
        """The primary revokes expired leases and checkpoints remaining TTLs, through raft."""
        interval = self.settings.lease_checkpoint_interval_s
        while not self._stopped:
            await asyncio.sleep(0.5)
            if not self.lessor.is_primary:
                continue
            now = time.monotonic()
            for lease_id in self.lessor.expired(now):
                request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
                self._spawn(self._propose_quietly("lease_revoke", request))
            due = self.lessor.due_checkpoints(now, interval)
            if due:
                request = rpc_pb2.LeaseCheckpointRequest()
                for lease_id, remaining in due:
                    request.checkpoints.add(ID=lease_id, remaining_TTL=remaining)
                self._spawn(self._propose_quietly("lease_checkpoint", request))

    async def _v2_sync_loop(self) -> None:
        """The leader expires v2 TTL nodes: a SYNC entry carries its clock, so every member expires the
        same nodes at the same log position (etcd's 500 ms sync ticker)."""
        while not self._stopped:
            await asyncio.sleep(self.settings.v2_sync_interval_s)
            if self.is_leader() and self.v2store.has_ttl_keys():
                request = etcdserver_pb2.Request(Method="SYNC", Time=time.time_ns())
                self._spawn(self._propose_quietly("v2", request))

    async def _backend_loop(self) -> None:
        interval = self.settings.backend_commit_interval_s
        while not self._stopped:
            await asyncio.sleep(interval)
            await self._commit_backend(sync=False)

    def _collect_batch(self) -> WriteBatch | None:
        changes = self.store.take_changes()
        lease_changes = self.lessor.take_changes()
        member_changes, self._member_changes = self._member_changes, []
        nothing_new = self.applied_index == self.consistent_index and not self._alarms_dirty
        if nothing_new and not changes and not lease_changes and not member_changes:
            return None
        batch = WriteBatch()
        for member_id, member in member_changes:
            if member is None:
                removed_record(batch, member_id)
            else:
                member_record(batch, member)
        for key, record in changes:
            if record is None:
                batch.delete("key", key)
            else:
                batch.put("key", key, record)
        for lease_id, lease in lease_changes:
            if lease is None:
                batch.delete("lease", lease_key(lease_id))
            else:
                batch.put("lease", lease_key(lease_id), encode_lease(lease))
        if self._alarms_dirty:
            batch.delete_range("alarm", b"", b"\xff" * 16)
            for member_id, alarm in self.alarms:
                batch.put("alarm", struct.pack(">QI", member_id, alarm), b"")
            self._alarms_dirty = False
        batch.put("meta", _META_APPLIED, _U64.pack(self.applied_index))
        batch.put("meta", _META_TERM, _U64.pack(self.raft.term))
        batch.put("meta", _META_COMPACT, _U64.pack(self.store.compact_revision))
        return batch

    async def _commit_backend(self, *, sync: bool) -> None:
        async with self._backend_lock:
            batch = self._collect_batch()
            applied = self.applied_index
            if batch is None:
                return
            if self._backend_broken:
                return
            started = time.monotonic()
            try:
                await asyncio.to_thread(self.backend.write, batch, sync=sync)
            except Exception as error:
                # The batch's changes left memory's change log: committing anything later would record an
                # applied index without them. Stop; the WAL replays them on the next start (etcd panics).
                self._backend_broken = True
                log.critical("backend commit failed, stopping: %s", error)
                self.stop()
                raise BackendError(f"backend commit to {self.paths.backend} failed: {error}") from error
            self.consistent_index = max(self.consistent_index, applied)
            self._refresh_sizes()
            if self.metrics is not None:
                self.metrics.on_backend_commit(time.monotonic() - started)

    async def _snapshot(self) -> None:
        """Snapshot at the applied index: make the backend durable there, write the snapshot file,
        release the WAL before it and compact the in-memory log."""
        try:
            # The v2 tree is copied at exactly the index it has applied (not ``applied_index``, which the
            # backend may have put ahead of the tree during a restart's replay); the backend commit below
            # then holds at least that index.
            index = self.v2_applied_index
            state = {"members": [m.to_json() for m in self.members.values()]}
            state["v2store"] = self.v2store.save().decode()
            await self._commit_backend(sync=True)
            if index <= self.snapshot_index or self.consistent_index < index:
                return
            conf_state = self.node.status().conf_state
            data = json.dumps(state).encode()
            snapshot = self.storage.create_snapshot(index, conf_state, data)
            await asyncio.to_thread(self.storage.persist_snapshot, snapshot)
            self.storage.compact(index, SNAPSHOT_CATCH_UP_ENTRIES)
            await asyncio.to_thread(self.storage.purge_snapshots, self.settings.max_snapshots)
            self.snapshot_index = index
            log.info("saved snapshot at index %d", index)
        finally:
            self._snapshotting = False

    def _on_fsync(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.on_fsync(seconds)

    # --- maintenance ------------------------------------------------------------------------------
    async def defragment(self) -> None:
        # What was applied but not yet committed (a compaction's removals) goes in first, or the
        # defragmented file keeps it and a NOSPACE alarm cannot be cleared.
        await self._commit_backend(sync=False)
        async with self._backend_lock:
            await asyncio.to_thread(self.backend.defragment)
            self._refresh_sizes()

    async def copy_backend(self, target: Path) -> None:
        await self._commit_backend(sync=False)
        async with self._backend_lock:
            await asyncio.to_thread(self.backend.copy_to, target)

    # --- membership changes (the Cluster service and /v2/members call these) ------------------------
    async def add_member(self, peer_urls: list[str], is_learner: bool = False) -> tuple[Member, list[Member]]:
        member = new_member(parse_peer_urls(peer_urls), is_learner)
        check_add(self.members, self.removed, member, strict=self.settings.strict_reconfig_check)
        kind = ConfChangeType.ADD_LEARNER if is_learner else ConfChangeType.ADD_NODE
        return member, await self._propose_conf_change(kind, member.id, member)

    async def remove_member(self, member_id: int) -> list[Member]:
        if self.settings.strict_reconfig_check:
            active = {m: self.transport.active_since(m) for m in self.members if m != self.member_id}
            check_remove(self.members, member_id, self.member_id, active, time.monotonic())
        elif member_id not in self.members:
            raise errors.member_not_found()
        return await self._propose_conf_change(ConfChangeType.REMOVE_NODE, member_id, None)

    async def update_member(self, member_id: int, peer_urls: list[str]) -> list[Member]:
        updated = check_update(self.members, member_id, parse_peer_urls(peer_urls))
        return await self._propose_conf_change(ConfChangeType.UPDATE_NODE, member_id, updated)

    async def promote_member(self, member_id: int) -> list[Member]:
        """On the leader (it alone knows how far the learner's log is)."""
        if not self.is_leader():
            raise errors.not_leader()
        progress = self.node.status().progress
        match = progress[member_id].match if member_id in progress else None
        promoted = check_promote(self.members, member_id, match, progress[self.member_id].match)
        return await self._propose_conf_change(ConfChangeType.ADD_NODE, member_id, promoted)

    async def _propose_conf_change(
        self, kind: ConfChangeType, target: int, member: Member | None
    ) -> list[Member]:
        if self._stopped:
            raise errors.stopped()
        if self.raft.leader_id == NO_LEADER:
            raise errors.no_leader()
        request_id = self._ids.next()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._conf_waiters[request_id] = fut
        deadline = loop.time() + self.settings.timeout_s
        try:
            while True:
                try:
                    self.raft.propose_conf_change(encode_change(kind, target, request_id, member))
                    break
                except ConfChangePending as busy:
                    # etcd's raft turns such a change into an empty entry and its caller times out; we
                    # wait for the earlier change (or a new leader's backlog) to apply and try again.
                    if loop.time() >= deadline:
                        raise _unavailable(busy) from None
                    await asyncio.sleep(CONF_CHANGE_RETRY_S)
                except ProposalDropped as dropped:
                    raise _unavailable(dropped) from None
            try:
                return await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise errors.timeout() from None
        finally:
            self._conf_waiters.pop(request_id, None)

    async def move_leader(self, target: int) -> None:
        """Maintenance.MoveLeader: hand leadership to ``target`` and wait until it leads."""
        if not self.is_leader():
            raise errors.not_leader()
        member = self.members.get(target)
        if member is None or member.is_learner:
            raise errors.bad_leader_transferee()
        if target == self.member_id:
            return
        self.raft.transfer_leadership(target)
        deadline = time.monotonic() + self.settings.timeout_s
        while self.raft.leader_id != target:
            if time.monotonic() > deadline:
                raise errors.timeout_leader_transfer()
            await asyncio.sleep(self.settings.heartbeat_interval_ms / 1000)
        log.info("leadership transferred from %x to %x", self.member_id, target)

    # --- the peer transport's callbacks ---------------------------------------------------------------
    def _make_transport(self) -> Transport:
        from flotilla.etcd.peer import PeerTransport

        return PeerTransport(
            self.member_id,
            self.cluster_id,
            on_message=self.raft_step,
            on_unreachable=lambda peer: self.raft.report_unreachable(peer),
            on_snapshot_status=lambda peer, ok: self.raft.report_snapshot(peer, ok),
            prepare_snapshot=self.prepare_snapshot,
            snapshot_dir=self.paths.snap,
            is_removed=lambda peer: peer in self.removed,
            on_removed=self._on_removed,
            server_ssl=self.settings.peer_server_ssl,
            client_ssl=self.settings.peer_client_ssl,
        )

    def raft_step(self, message) -> None:
        if not self._stopped:
            self.raft.step(message)

    async def prepare_snapshot(self, message) -> Path:
        """The leader's backend, copied for a follower that needs the snapshot in ``message``: it holds at
        least the snapshot's index (it only grows), the entries after it the follower skips for v3."""
        target = self.paths.snap / f"send-{message.to:x}-{message.snapshot.index:016x}.db.tmp"
        await self.copy_backend(target)
        return target

    def _on_removed(self) -> None:
        if not self.removed_from_cluster:
            log.warning("the member has been permanently removed from the cluster (a peer refused it)")
            self.removed_from_cluster = True
            self.stop()

    def conf_state(self) -> ConfState:
        return self.node.status().conf_state

    def is_leader(self) -> bool:
        return self.raft.leader_id == self.member_id

    def leader_id(self) -> int:
        return self.raft.leader_id

    def hash_kv(self, revision: int) -> tuple[int, int]:
        return self.store.hash_kv(revision)


def _unavailable(dropped: ProposalDropped) -> errors.EtcdError:
    return errors.EtcdError(errors.grpc.StatusCode.UNAVAILABLE, f"etcdserver: {dropped}")

"""``flotilla etcd``: one member process — the server, its gRPC services, the client listeners.

Start-up order, as etcd's: open the data directory (replaying the WAL tail), start raft, wait until the
member has a leader and has applied its log, then serve clients and log ``ready to serve client
requests`` (test tools wait for that line). SIGTERM or SIGINT stop it cleanly: listeners close, the
backend gets a final synced commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import signal
import ssl
import sys
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import grpc

from flotilla.backend.errors import BackendError
from flotilla.etcd.config import EtcdConfig, parse_initial_cluster
from flotilla.etcd.http import make_http_app
from flotilla.etcd.ids import cluster_id, member_id, parse_id
from flotilla.etcd.listener import ClientListener
from flotilla.etcd.metrics import Metrics
from flotilla.etcd.server import EtcdServer, Member, ServerSettings
from flotilla.etcd.services import (
    ClusterService,
    KVService,
    LeaseService,
    MaintenanceService,
    add_servicers_to_server,
)
from flotilla.etcd.watch_service import WatchService
from flotilla.snap import SnapError
from flotilla.wal import WalError

__all__ = ["MemberProcess", "run_member", "settings_from_config"]

log = logging.getLogger("flotilla.etcd")

GRPC_OVERHEAD_BYTES = 512 * 1024  # etcd lets gRPC messages exceed --max-request-bytes by this much


class _CapnslogFormatter(logging.Formatter):
    """etcd 3.4's default log line: ``2026-11-22 06:30:00.123456 I | etcdserver: message``."""

    _LEVELS = {"DEBUG": "D", "INFO": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "C"}

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S.%f")
        package = record.name.rsplit(".", 1)[-1]
        text = f"{when} {self._LEVELS.get(record.levelname, 'I')} | {package}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)  # flushes every record: tools read it from a pipe
    handler.setFormatter(_CapnslogFormatter())
    root = logging.getLogger("flotilla")
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    root.propagate = False


def settings_from_config(config: EtcdConfig) -> ServerSettings:
    """The server's settings from etcd's flags: member and cluster IDs computed as etcd computes them."""
    _refuse_unsupported(config)
    token = config.bootstrap_token()
    cluster = config.initial_members() or {config.name: tuple(config.initial_advertise_peer_urls)}
    if config.discovery and not config.is_member_initialized():
        cluster = parse_initial_cluster(_discover(config))
    members = []
    for name, urls in cluster.items():
        # Client URLs are not part of the founding record: each member publishes its own through raft.
        members.append(Member(member_id(list(urls), token), name, tuple(urls)))
    own = [m for m in members if m.name == config.name]
    if not own:
        raise SystemExit(
            f"flotilla etcd: couldn't find local name {config.name!r} in the initial cluster configuration"
        )
    own_id, the_cluster_id = own[0].id, cluster_id([m.id for m in members])
    join_existing = config.initial_cluster_state == "existing" and not config.is_member_initialized()
    if join_existing:
        own_id, the_cluster_id, members = _join_existing(config, own[0])
    server_ssl, client_ssl = _peer_ssl(config)
    data_dir = Path(config.data_dir)
    return ServerSettings(
        name=config.name,
        data_dir=data_dir,
        wal_dir=Path(config.wal_dir) if config.wal_dir else None,
        member_id=own_id,
        cluster_id=the_cluster_id,
        members=members,
        advertise_client_urls=tuple(config.advertise_client_urls),
        listen_peer_urls=tuple(config.listen_peer_urls),
        join_existing=join_existing,
        strict_reconfig_check=config.strict_reconfig_check,
        peer_server_ssl=server_ssl,
        peer_client_ssl=client_ssl,
        heartbeat_interval_ms=config.heartbeat_interval_ms,
        election_timeout_ms=config.election_timeout_ms,
        snapshot_count=config.snapshot_count,
        max_snapshots=config.max_snapshots,
        quota_backend_bytes=config.backend_quota_bytes or 2**62,
        max_request_bytes=config.max_request_bytes,
        max_txn_ops=config.max_txn_ops,
        lease_checkpoint_interval_s=config.experimental_lease_checkpoint_interval_s,
        watch_progress_notify_interval_s=config.experimental_watch_progress_notify_interval_s,
        v2_history_size=max(1, config.v2_history_size),
    )


class FallBackToProxy(Exception):
    """Discovery found the cluster full and --discovery-fallback is proxy: run as a proxy instead."""


def _discover(config: EtcdConfig) -> str:
    """Register with the discovery service and wait until the cluster's size is reached: the initial
    cluster (``name=url,...``). etcd's behaviour beyond the size: a proxy, or an exit."""
    from flotilla.discovery import ClusterFullError, DiscoveryError, join_cluster

    urls = list(config.initial_advertise_peer_urls)
    own_id = member_id(urls, config.discovery)
    try:
        return asyncio.run(
            join_cluster(config.discovery, own_id, config.name, urls, proxy=config.discovery_proxy)
        )
    except ClusterFullError as error:
        if config.discovery_fallback == "proxy":
            log.warning("discovery cluster full, falling back to proxy")
            raise FallBackToProxy() from error
        raise SystemExit(_discovery_failure(config, error)) from None
    except DiscoveryError as error:
        raise SystemExit(_discovery_failure(config, error)) from None


def _discovery_failure(config: EtcdConfig, error: Exception) -> str:
    """etcd's words when discovery fails (its DiscoveryError, then its advice)."""
    detail = f" ({error.detail})" if getattr(error, "detail", "") else ""
    return (
        f"flotilla etcd: failed to join discovery cluster ({error}){detail}\n"
        f"discovery token {config.discovery} was used, but failed to bootstrap the cluster.\n"
        "please generate a new discovery token and try to bootstrap again."
    )


def _join_existing(config: EtcdConfig, own: Member) -> tuple[int, int, list[Member]]:
    """``--initial-cluster-state existing``: ask the running members (their peer URLs in
    ``--initial-cluster``) for the cluster, find this member there by its peer URLs (``member add`` put
    it there) and take its ID and the cluster's (etcd's GetClusterFromRemotePeers)."""
    own_urls = set(own.peer_urls)
    peer_urls = [u for urls in config.initial_members().values() for u in urls if u not in own_urls]
    failures = []
    for url in peer_urls:
        try:
            with urllib.request.urlopen(f"{url}/members", timeout=2) as response:
                remote = json.loads(response.read())
                cluster_hex = response.headers.get("X-Etcd-Cluster-ID", "")
        except (OSError, ValueError) as error:
            failures.append(f"{url}: {error}")
            continue
        members = []
        found = None
        for m in remote:
            urls, client_urls = tuple(m["peerURLs"]), tuple(m.get("clientURLs") or ())
            member = Member(parse_id(m["id"]), m.get("name", ""), urls, client_urls)
            if set(member.peer_urls) == own_urls:
                found = member  # its name and client URLs are published once it runs
            members.append(member)
        if found is None:
            raise SystemExit(
                f"flotilla etcd: error validating peerURLs: this member's peer URLs {sorted(own_urls)} are "
                f"not in the cluster's member list from {url}; add it first "
                f"(etcdctl member add {config.name} "
                f"--peer-urls={','.join(sorted(own_urls))})"
            )
        return found.id, parse_id(cluster_hex), members
    raise SystemExit(
        "flotilla etcd: cannot fetch cluster info from peer urls: could not retrieve cluster information "
        f"from the given URLs ({'; '.join(failures) or 'no other member in --initial-cluster'})"
    )


def _peer_ssl(config: EtcdConfig) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """TLS contexts for https:// peer URLs from --peer-cert-file, --peer-key-file, --peer-trusted-ca-file
    and --peer-client-cert-auth."""
    urls = (*config.listen_peer_urls, *config.initial_advertise_peer_urls)
    if not config.peer_cert_file:
        if any(u.startswith("https") for u in urls):
            raise SystemExit(
                "flotilla etcd: https:// peer URLs need --peer-cert-file and --peer-key-file "
                "(--peer-auto-tls is not supported yet)"
            )
        return None, None
    ca = config.peer_trusted_ca_file or None
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    server.load_cert_chain(config.peer_cert_file, config.peer_key_file)
    if config.peer_client_cert_auth:
        server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    client.load_cert_chain(config.peer_cert_file, config.peer_key_file)
    client.check_hostname = False  # members are dialled by IP; the CA (when given) still vouches
    if ca is None:
        client.verify_mode = ssl.CERT_NONE
    return server, client


def _refuse_unsupported(config: EtcdConfig) -> None:
    """Flags this member cannot honour yet stop it at start, saying so, rather than being ignored: a
    member that quietly served plaintext on an https:// URL, or started a new cluster when told to join
    one, would do harm."""
    problems = []
    urls = (*config.listen_client_urls, *config.advertise_client_urls)
    if (
        any(u.startswith("https") for u in urls)
        or config.cert_file
        or config.auto_tls
        or config.client_cert_auth
    ):
        problems.append("client TLS (https:// client URLs, --cert-file, --auto-tls, --client-cert-auth)")
    if config.peer_auto_tls:
        problems.append("--peer-auto-tls (give --peer-cert-file and --peer-key-file)")
    if config.discovery_srv and not config.discovery:
        problems.append("DNS SRV discovery (--discovery-srv)")
    if problems:
        raise SystemExit(
            "flotilla etcd: not supported yet by this single-member store: "
            + "; ".join(problems)
            + ". Run without these flags, or use Debian's etcd for them for now."
        )


class MemberProcess:
    """The server plus everything that serves it to clients."""

    def __init__(
        self,
        settings: ServerSettings,
        client_urls: list[str],
        *,
        enable_v2: bool = False,
        cors_origins: tuple[str, ...] = ("*",),
    ) -> None:
        self.settings = settings
        self.client_urls = client_urls
        self.enable_v2 = enable_v2
        self.cors_origins = cors_origins
        self.server = EtcdServer(settings)
        self.metrics = Metrics(self.server)
        self.server.metrics = self.metrics
        s = self.server
        self.servicers = {
            "KV": KVService(s),
            "Watch": WatchService(s),
            "Lease": LeaseService(s),
            "Cluster": ClusterService(s),
            "Maintenance": MaintenanceService(s),
        }
        self._grpc_server: grpc.aio.Server | None = None
        self._listeners: list[ClientListener] = []
        self._http_runner = None

    async def _start_grpc(self) -> str:
        max_bytes = self.settings.max_request_bytes + GRPC_OVERHEAD_BYTES
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 4 * max_bytes),
                ("grpc.max_send_message_length", 2**31 - 1),
                ("grpc.max_concurrent_streams", 2**31 - 1),
            ]
        )
        # gRPC core's own limit sits above etcd's, so our handlers refuse an oversized request with
        # grpc-go's words (and malformed ones too), as etcd's clients expect.
        add_servicers_to_server(self.servicers, server, max_message_bytes=max_bytes)
        name = f"flotilla-grpc-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        server.add_insecure_port(f"unix-abstract:{name}")
        await server.start()
        self._grpc_server = server
        return "\0" + name

    async def _start_listeners(self, grpc_path: str) -> None:
        from aiohttp import web

        app = make_http_app(
            self.server,
            self.servicers,
            self.metrics,
            enable_v2=self.enable_v2,
            cors_origins=self.cors_origins,
        )
        # A client whose connection drops cancels its handler (a half-close is listener.client_gone).
        # A stop does not wait for long-lived responses (gateway watch streams, v2 watches): etcd closes
        # them at once; aiohttp would wait a minute for each kind.
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        self._http_runner = runner
        for url in self.client_urls:
            parts = urlsplit(url)
            host = parts.hostname or "127.0.0.1"
            listener = ClientListener(host, parts.port or 2379, grpc_path, runner.server)
            await listener.start()
            self._listeners.append(listener)

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tasks:
            server_task = tasks.create_task(self.server.run())
            started = tasks.create_task(self.server.wait_started())
            stopping = tasks.create_task(stop.wait())
            await asyncio.wait({started, stopping, server_task}, return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set() and not server_task.done():
                grpc_path = await self._start_grpc()
                await self._start_listeners(grpc_path)
                log.info("ready to serve client requests")
                log.info("serving client requests on %s", ", ".join(self.client_urls))
                await asyncio.wait({stopping, server_task}, return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
            stopping.cancel()
            await self.shutdown()

    async def shutdown(self) -> None:
        for listener in self._listeners:
            await listener.close()
        if self._grpc_server is not None:
            await self._grpc_server.stop(grace=0.5)
        if self._http_runner is not None:
            await self._http_runner.cleanup()
        self.server.stop()


def run_member(config: EtcdConfig) -> int:
    """Run a member until SIGTERM/SIGINT; the process exit code."""
    _setup_logging(getattr(config, "log_level", "info") or "info")
    data_dir = Path(config.data_dir)
    has_member, has_proxy = (data_dir / "member").is_dir(), (data_dir / "proxy").is_dir()
    if has_member and has_proxy:
        log.critical("invalid datadir. Both member and proxy directories exist.")
        return 1
    # As etcd: what the data directory already is wins over the flags.
    if has_proxy or (config.proxy != "off" and not has_member):
        from flotilla.etcd.proxy import run_proxy

        return run_proxy(config if config.proxy != "off" else dataclasses.replace(config, proxy="on"))
    try:
        settings = settings_from_config(config)
    except FallBackToProxy:
        from flotilla.etcd.proxy import run_proxy

        return run_proxy(dataclasses.replace(config, proxy="on"))
    try:
        process = MemberProcess(
            settings,
            list(config.listen_client_urls),
            enable_v2=config.enable_v2,
            cors_origins=tuple(config.cors) or ("*",),
        )
    except (WalError, SnapError, BackendError) as error:
        # Damaged data: stop before serving anything, naming what is wrong and where.
        log.critical("cannot open the data directory %s: %s", settings.data_dir, error)
        return 1
    # The restored keyspace is long-lived: keep the cyclic GC from rescanning it, and collect young
    # objects less often (the request path allocates many short-lived, acyclic ones).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await process.run(stop)

    failures: list[BaseException] = []
    try:
        asyncio.run(main())
    except* (WalError, SnapError, BackendError, OSError) as group:
        failures.extend(group.exceptions)  # e.g. a port in use, a disk error while running
    for error in failures:
        log.critical("stopping: %s", error)
    if failures:
        return 1
    with contextlib.suppress(Exception):
        logging.getLogger("flotilla").handlers[0].flush()
    return 0

"""`flotilla etcd`'s configuration: etcd 3.4's flags, their ``ETCD_*`` variables, Go's flag syntax.

``_FLAGS`` is the source of truth: one row per etcd flag, naming the field of :class:`EtcdConfig` it fills,
its kind (how the text is read), etcd's default as etcd prints it, and its help line. Parsing follows Go's
``flag`` package as etcd uses it:

- ``-flag``, ``--flag``, ``-flag=value``, ``--flag=value`` and ``--flag value`` are the same; a boolean
  takes no separate value (``--enable-v2``, ``--enable-v2=false``); a flag given twice: the last wins;
  ``--`` or the first non-flag argument ends the flags, and any argument left over is an error.
- Then every flag not given on the command line reads ``ETCD_<FLAG>`` (upper case, dashes to
  underscores) when it is set and not empty. A flag given on the command line wins over its variable
  (etcd's documented rule; etcd 3.4's binary refuses to start instead, we log a warning). Other
  ``ETCD_*`` variables are reported as unrecognized and otherwise ignored, as etcd does.
- Then etcd's checks (``embed.Config.Validate``), and, for a member that has no WAL yet, the bootstrap
  checks etcd makes before creating one (:meth:`EtcdConfig.verify_bootstrap`).

Every error is a :class:`ConfigError` whose message says what was wrong, where (which flag or variable)
and what to do; the command line prints it and exits 2.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import logging
import os
import platform
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from flotilla import __version__
from flotilla.gotext import GoDurationError, parse_go_duration

__all__ = [
    "ETCD_API_VERSION",
    "ETCD_VERSION",
    "ConfigError",
    "EtcdConfig",
    "HelpRequested",
    "env_var",
    "parse_args",
    "parse_initial_cluster",
    "usage",
    "validate_url",
    "version_text",
]

_log = logging.getLogger(__name__)

ETCD_API_VERSION = "3.4"
# What `etcd --version` and tools that parse it see: the etcd release whose behaviour we match.
ETCD_VERSION = "3.4.0"

_DEFAULT_BACKEND_QUOTA_BYTES = 2 * 1024**3
_MAX_ELECTION_MS = 50000
_BCRYPT_COST_RANGE = range(4, 32)
_DEFAULT_BCRYPT_COST = 10
_LOG_LEVELS = ("debug", "info", "warn", "error", "dpanic", "panic", "fatal")
_URL_SCHEMES = ("http", "https", "unix", "unixs")


def _q(text: str) -> str:
    """Go's %q: a double-quoted string, as etcd quotes values in its messages."""
    return json.dumps(text, ensure_ascii=False)


class ConfigError(Exception):
    """A flag, variable or combination etcd would refuse; the message says what, where and what to do."""


class HelpRequested(Exception):  # noqa: N818 - a request, not an error
    """``-h``/``--help`` was given: print :func:`usage` and exit 0 (Go's flag package: ErrHelp)."""


@dataclass(frozen=True)
class EtcdConfig:
    """Every etcd 3.4 flag as a typed field with etcd's default (see ``_FLAGS`` for the flag of each).

    Durations are float seconds (``_s``); URL lists are tuples of URLs, sorted and without duplicates, in
    the form etcd prints them. :func:`parse_args` fills ``data_dir`` (``<name>.etcd`` when not given) and
    rewrites the default ``initial_cluster`` for a non-default ``--name`` as etcd does.
    """

    # Member
    name: str = "default"
    data_dir: str = ""
    wal_dir: str = ""
    snapshot_count: int = 100000
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000
    initial_election_tick_advance: bool = True
    listen_peer_urls: tuple[str, ...] = ("http://localhost:2380",)
    listen_client_urls: tuple[str, ...] = ("http://localhost:2379",)
    max_snapshots: int = 5
    max_wals: int = 5
    quota_backend_bytes: int = 0
    backend_batch_interval_s: float = 0.0
    backend_batch_limit: int = 0
    max_txn_ops: int = 128
    max_request_bytes: int = 1572864
    max_concurrent_streams: int = (1 << 32) - 1
    grpc_keepalive_min_time_s: float = 5.0
    grpc_keepalive_interval_s: float = 7200.0
    grpc_keepalive_timeout_s: float = 20.0
    # Clustering
    initial_advertise_peer_urls: tuple[str, ...] = ("http://localhost:2380",)
    initial_cluster: str = "default=http://localhost:2380"
    initial_cluster_state: Literal["new", "existing"] = "new"
    initial_cluster_token: str = "etcd-cluster"
    advertise_client_urls: tuple[str, ...] = ("http://localhost:2379",)
    discovery: str = ""
    discovery_fallback: Literal["proxy", "exit"] = "proxy"
    discovery_proxy: str = ""
    discovery_srv: str = ""
    discovery_srv_name: str = ""
    strict_reconfig_check: bool = True
    pre_vote: bool = False
    auto_compaction_retention: str = "0"
    auto_compaction_mode: str = "periodic"
    enable_v2: bool = False
    enable_grpc_gateway: bool = True
    # Security
    cert_file: str = ""
    key_file: str = ""
    client_cert_auth: bool = False
    client_crl_file: str = ""
    client_cert_allowed_hostname: str = ""
    trusted_ca_file: str = ""
    auto_tls: bool = False
    peer_cert_file: str = ""
    peer_key_file: str = ""
    peer_client_cert_auth: bool = False
    peer_trusted_ca_file: str = ""
    peer_cert_allowed_cn: str = ""
    peer_cert_allowed_hostname: str = ""
    peer_auto_tls: bool = False
    peer_crl_file: str = ""
    cipher_suites: tuple[str, ...] = ()
    cors: tuple[str, ...] = ("*",)
    host_whitelist: tuple[str, ...] = ("*",)
    # Auth
    auth_token: str = "simple"
    bcrypt_cost: int = _DEFAULT_BCRYPT_COST
    auth_token_ttl_s: int = 300
    # Profiling and monitoring
    enable_pprof: bool = False
    metrics: str = "basic"
    listen_metrics_urls: tuple[str, ...] = ()
    # Logging
    logger: str = "capnslog"
    log_outputs: tuple[str, ...] = ("default",)
    log_output: tuple[str, ...] = ("default",)
    log_level: str = "info"
    debug: bool = False
    log_package_levels: str = ""
    # v2 proxy
    proxy: Literal["off", "readonly", "on"] = "off"
    proxy_failure_wait_ms: int = 5000
    proxy_refresh_interval_ms: int = 30000
    proxy_dial_timeout_ms: int = 1000
    proxy_write_timeout_ms: int = 5000
    proxy_read_timeout_ms: int = 0
    # Experimental
    experimental_initial_corrupt_check: bool = False
    experimental_corrupt_check_time_s: float = 0.0
    experimental_enable_v2v3: str = ""
    experimental_backend_bbolt_freelist_type: str = "array"
    experimental_enable_lease_checkpoint: bool = False
    experimental_enable_lease_checkpoint_persist: bool = False
    experimental_lease_checkpoint_interval_s: float = 15.0
    v2_history_size: int = 1000
    experimental_compaction_batch_limit: int = 1000
    experimental_peer_skip_client_san_verification: bool = False
    experimental_watch_progress_notify_interval_s: float = 600.0
    experimental_warning_apply_duration_s: float = 0.1
    # Unsafe
    unsafe_no_fsync: bool = False
    force_new_cluster: bool = False
    # Not configuration: what the command was asked to do.
    config_file: str = ""
    version: bool = False

    @property
    def election_ticks(self) -> int:
        """Raft's election timeout in heartbeat ticks, as etcd derives it (one tick per heartbeat)."""
        return self.election_timeout_ms // self.heartbeat_interval_ms

    @property
    def backend_quota_bytes(self) -> int | None:
        """The backend size that raises the NOSPACE alarm: 2 GiB for 0, none (None) for a negative value."""
        if self.quota_backend_bytes < 0:
            return None
        return self.quota_backend_bytes or _DEFAULT_BACKEND_QUOTA_BYTES

    @property
    def wal_path(self) -> str:
        """Where the WAL lives: ``--wal-dir``, else ``<data-dir>/member/wal`` (etcd's layout)."""
        return self.wal_dir or os.path.join(self.data_dir, "member", "wal")

    def is_member_initialized(self) -> bool:
        """True when the WAL directory exists and is not empty: the member restarts from its data and
        ignores the ``--initial-*`` flags, as etcd does."""
        try:
            return bool(os.listdir(self.wal_path))
        except OSError:
            return False

    def auto_compaction_retention_value(self) -> float | int:
        """``--auto-compaction-retention`` read as etcd reads it: in revision mode a revision count; in
        periodic mode seconds (a bare integer counts hours, else a Go duration such as ``30m``)."""
        try:
            return _parse_retention(self.auto_compaction_mode, self.auto_compaction_retention)
        except ValueError as e:
            raise ConfigError(
                f"invalid value {_q(self.auto_compaction_retention)} for --auto-compaction-retention: {e}; "
                "use a number of hours or a duration such as 30m (periodic mode) or a number of revisions "
                "(revision mode)"
            ) from None

    def initial_members(self) -> dict[str, tuple[str, ...]]:
        """The founding members by name with their peer URLs: from ``--discovery`` this member alone,
        else parsed from ``--initial-cluster`` (``name=url,name=url``, a name may repeat for more URLs)."""
        if self.discovery:
            return {self.name: self.initial_advertise_peer_urls}
        return parse_initial_cluster(self.initial_cluster)

    def bootstrap_token(self) -> str:
        """The token founding member IDs hash: the discovery URL with ``--discovery``, else
        ``--initial-cluster-token``."""
        return self.discovery or self.initial_cluster_token

    def verify_bootstrap(self) -> None:
        """etcd's checks before a member without a WAL creates one (``VerifyBootstrap`` for a new cluster,
        ``VerifyJoinExisting`` for ``--initial-cluster-state existing``); raises ConfigError.
        With ``--discovery-srv`` the members come from DNS, which is the member's job to check."""
        if self.discovery_srv and not self.discovery:
            return
        members = self.initial_members()
        if self.name not in members:
            raise ConfigError(
                f"couldn't find local name {_q(self.name)} in the initial cluster configuration "
                f"(--initial-cluster={_q(self.initial_cluster)}); add {self.name}=<this member's peer URL> "
                "to --initial-cluster or give the --name it lists"
            )
        urls = [url for member_urls in members.values() for url in member_urls]
        if len(urls) != len(set(urls)):
            raise ConfigError(f"initial cluster {_format_members(members)} has duplicate url; "
                              "give every member its own peer URLs in --initial-cluster")
        if self.initial_cluster_state == "existing":
            if self.discovery:
                raise ConfigError("discovery URL should not be set when joining existing initial cluster; "
                                  "drop --discovery or use --initial-cluster-state new")
            return
        self._verify_advertised_peer_urls(members[self.name])

    def _verify_advertised_peer_urls(self, listed: tuple[str, ...]) -> None:
        advertised = self.initial_advertise_peer_urls
        missing = [url for url in listed if url not in advertised]
        if missing:
            raise ConfigError(
                f"--initial-cluster has {','.join(f'{self.name}={url}' for url in missing)} but missing from "
                f"--initial-advertise-peer-urls={','.join(advertised)}; the URLs --initial-cluster lists for "
                f"{_q(self.name)} must be exactly its --initial-advertise-peer-urls"
            )
        extra = [url for url in advertised if url not in listed]
        if extra:
            raise ConfigError(
                f"--initial-advertise-peer-urls has {','.join(extra)} but missing from "
                f"--initial-cluster={self.initial_cluster}; list every advertised peer URL of "
                f"{_q(self.name)} in --initial-cluster"
            )


# ---------------------------------------------------------------------------------------------------------
# Values as Go's flag package and etcd's flag types read them. Each raises ValueError with the reason.


def _go_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError("parse error (use true or false)")


def _go_int(text: str, *, signed: bool, bits: int) -> int:
    """strconv.Parse(U)Int(text, 0, bits): a 0x/0o/0b prefix or a leading 0 (octal), underscores between
    digits, a sign only for signed values."""
    body = text
    negative = False
    if signed and body[:1] in ("+", "-"):
        negative, body = body[0] == "-", body[1:]
    if not body or not body.isascii() or any(c.isspace() for c in body) or body[0] in "+-_":
        raise ValueError("parse error (expected an integer)")
    base, digits = 10, body
    if len(body) > 1 and body[0] == "0":
        prefix = body[1].lower()
        prefixed = {"x": (16, body[2:]), "o": (8, body[2:]), "b": (2, body[2:])}
        base, digits = prefixed.get(prefix, (8, body[1:]))
        # Go allows an underscore between the base prefix and the first digit.
        digits = digits.removeprefix("_")
    try:
        value = int(digits, base)
    except ValueError:
        raise ValueError("parse error (expected an integer)") from None
    value = -value if negative else value
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        raise ValueError(f"value out of range ({low}..{high})")
    return value


def _go_duration(text: str) -> float:
    """time.ParseDuration in seconds: ``300ms``, ``1.5h``, ``2h45m``, ``-1s``; a bare number only for 0."""
    try:
        return parse_go_duration(text)
    except GoDurationError as error:
        if error.reason == "invalid":
            raise ValueError("parse error (expected a duration such as 5s, 100ms or 2h)") from None
        reason = f"unknown unit {_q(error.unit)}" if error.reason == "unknown unit" else "missing unit"
        raise ValueError(f"parse error ({reason}; use ns, us, ms, s, m or h, e.g. 5s)") from None


def _split_host_port(hostport: str) -> tuple[str, str]:
    """net.SplitHostPort: ``host:port`` or ``[v6]:port``; the port may be empty but not missing."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("missing ']' in address")
        if hostport[end + 1 : end + 2] != ":":
            raise ValueError("missing port in address")
        return hostport[1:end], hostport[end + 2 :]
    host, colon, port = hostport.rpartition(":")
    if not colon:
        raise ValueError("missing port in address")
    if ":" in host or "[" in host or "]" in host:
        raise ValueError("too many colons in address")
    return host, port


def validate_url(text: str) -> str:
    """One URL as etcd's types.NewURLs accepts it: http/https/unix/unixs, host:port, no path.
    Raises ValueError with etcd's message."""
    text = text.strip()
    try:
        parts = urlsplit(text)
    except ValueError as e:
        raise ValueError(f"{e}: {text}") from None
    if parts.scheme not in _URL_SCHEMES:
        raise ValueError(f"URL scheme must be http, https, unix, or unixs: {text}")
    try:
        _split_host_port(parts.netloc.rpartition("@")[2])
    except ValueError:
        raise ValueError(f'URL address does not have the form "host:port": {text}') from None
    if parts.path:
        raise ValueError(f"URL must not contain a path: {text}")
    query = f"?{parts.query}" if parts.query else ""
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{parts.scheme}://{parts.netloc}{query}{fragment}"


def _urls(text: str) -> tuple[str, ...]:
    # An empty value clears the list (etcd accepts "" for these flags, e.g. --listen-metrics-urls="").
    if text == "":
        return ()
    return tuple(sorted({validate_url(part) for part in text.split(",")}))


def _cors(text: str) -> tuple[str, ...]:
    return ("*",) if text == "*" else _urls(text)


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"invalid value (use one of: {', '.join(choices)})")
        return text

    return parse


class _Flag(NamedTuple):
    name: str  # the flag, without dashes
    field: str  # the EtcdConfig field it sets ("" for flags etcd no longer supports)
    parse: Callable[[str], object]
    default: str  # etcd's default as `etcd --help` shows it, read by `parse` (checked by a test)
    help: str
    group: str
    is_bool: bool = False  # Go's IsBoolFlag: takes no separate value


def _s(name: str, field: str, default: str, help: str, group: str) -> _Flag:
    return _Flag(name, field, str, default, help, group)


def _b(name: str, field: str, default: str, help: str, group: str) -> _Flag:
    return _Flag(name, field, _go_bool, default, help, group, is_bool=True)


def _u(
    name: str, field: str, default: str, help: str, group: str, bits: int = 64, signed: bool = False
) -> _Flag:
    return _Flag(name, field, lambda t: _go_int(t, signed=signed, bits=bits), default, help, group)


def _d(name: str, field: str, default: str, help: str, group: str) -> _Flag:
    return _Flag(name, field, _go_duration, default, help, group)


def _l(
    name: str, field: str, default: str, help: str, group: str, parse: Callable[[str], object] = _urls
) -> _Flag:
    return _Flag(name, field, parse, default, help, group)


def _c(name: str, field: str, default: str, help: str, group: str, *choices: str) -> _Flag:
    return _Flag(name, field, _choice(*choices), default, help, group)


def _strings(text: str) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


def _unique_strings(text: str) -> tuple[str, ...]:
    return tuple(sorted(set(text.split(","))))


_M, _C, _S, _A, _P, _L, _X, _E, _U, _H = (
    "Member", "Clustering", "Security", "Auth", "Profiling and Monitoring", "Logging",
    "v2 Proxy (to be deprecated in v4)", "Experimental feature", "Unsafe feature", "Other",
)  # fmt: skip

_FLAGS: tuple[_Flag, ...] = (
    _s("name", "name", "default", "Human-readable name for this member.", _M),
    _s("data-dir", "data_dir", "", "Path to the data directory (default: ${name}.etcd).", _M),
    _s("wal-dir", "wal_dir", "", "Path to the dedicated wal directory.", _M),
    _u("snapshot-count", "snapshot_count", "100000",
       "Number of committed transactions to trigger a snapshot to disk.", _M),
    _u("heartbeat-interval", "heartbeat_interval_ms", "100",
       "Time (in milliseconds) of a heartbeat interval.", _M),
    _u("election-timeout", "election_timeout_ms", "1000",
       "Time (in milliseconds) for an election to timeout.", _M),
    _b("initial-election-tick-advance", "initial_election_tick_advance", "true",
       "Whether to fast-forward initial election ticks on boot for faster election.", _M),
    _l("listen-peer-urls", "listen_peer_urls", "http://localhost:2380",
       "List of URLs to listen on for peer traffic.", _M),
    _l("listen-client-urls", "listen_client_urls", "http://localhost:2379",
       "List of URLs to listen on for client traffic.", _M),
    _u("max-snapshots", "max_snapshots", "5",
       "Maximum number of snapshot files to retain (0 is unlimited).", _M),
    _u("max-wals", "max_wals", "5", "Maximum number of wal files to retain (0 is unlimited).", _M),
    _u("quota-backend-bytes", "quota_backend_bytes", "0",
       "Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB, negative disables).", _M,
       signed=True),
    _d("backend-batch-interval", "backend_batch_interval_s", "0s",
       "The maximum time before committing the backend transaction.", _M),
    _u("backend-batch-limit", "backend_batch_limit", "0",
       "The maximum operations before committing the backend transaction.", _M, signed=True),
    _u("max-txn-ops", "max_txn_ops", "128", "Maximum number of operations permitted in a transaction.", _M),
    _u("max-request-bytes", "max_request_bytes", "1572864",
       "Maximum client request size in bytes the server will accept.", _M),
    _u("max-concurrent-streams", "max_concurrent_streams", "4294967295",
       "Maximum concurrent streams that each client can open at a time.", _M, bits=32),
    _d("grpc-keepalive-min-time", "grpc_keepalive_min_time_s", "5s",
       "Minimum duration interval that a client should wait before pinging server.", _M),
    _d("grpc-keepalive-interval", "grpc_keepalive_interval_s", "2h",
       "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).", _M),
    _d("grpc-keepalive-timeout", "grpc_keepalive_timeout_s", "20s",
       "Additional duration of wait before closing a non-responsive connection (0 to disable).", _M),
    _l("initial-advertise-peer-urls", "initial_advertise_peer_urls", "http://localhost:2380",
       "List of this member's peer URLs to advertise to the rest of the cluster.", _C),
    _s("initial-cluster", "initial_cluster", "default=http://localhost:2380",
       "Initial cluster configuration for bootstrapping.", _C),
    _c("initial-cluster-state", "initial_cluster_state", "new",
       "Initial cluster state ('new' or 'existing').", _C,
       "new", "existing"),
    _s("initial-cluster-token", "initial_cluster_token", "etcd-cluster",
       "Initial cluster token for the etcd cluster during bootstrap.", _C),
    _l("advertise-client-urls", "advertise_client_urls", "http://localhost:2379",
       "List of this member's client URLs to advertise to the public.", _C),
    _s("discovery", "discovery", "", "Discovery URL used to bootstrap the cluster.", _C),
    _c("discovery-fallback", "discovery_fallback", "proxy",
       "Expected behavior ('exit' or 'proxy') when discovery services fails.", _C, "proxy", "exit"),
    _s("discovery-proxy", "discovery_proxy", "", "HTTP proxy to use for traffic to discovery service.", _C),
    _s("discovery-srv", "discovery_srv", "", "DNS srv domain used to bootstrap the cluster.", _C),
    _s("discovery-srv-name", "discovery_srv_name", "",
       "Suffix to the dns srv name queried when bootstrapping.", _C),
    _b("strict-reconfig-check", "strict_reconfig_check", "true",
       "Reject reconfiguration requests that would cause quorum loss.", _C),
    _b("pre-vote", "pre_vote", "false", "Enable to run an additional Raft election phase.", _C),
    _s("auto-compaction-retention", "auto_compaction_retention", "0",
       "Auto compaction retention length. 0 means disable auto compaction.", _C),
    _s("auto-compaction-mode", "auto_compaction_mode", "periodic",
       "Interpret 'auto-compaction-retention' one of: periodic|revision.", _C),
    _b("enable-v2", "enable_v2", "false", "Accept etcd V2 client requests.", _C),
    _b("enable-grpc-gateway", "enable_grpc_gateway", "true",
       "Enable the gRPC gateway (the v3 JSON API).", _C),
    _s("cert-file", "cert_file", "", "Path to the client server TLS cert file.", _S),
    _s("key-file", "key_file", "", "Path to the client server TLS key file.", _S),
    _b("client-cert-auth", "client_cert_auth", "false", "Enable client cert authentication.", _S),
    _s("client-crl-file", "client_crl_file", "", "Path to the client certificate revocation list file.", _S),
    _s("client-cert-allowed-hostname", "client_cert_allowed_hostname", "",
       "Allowed TLS hostname for client cert authentication.", _S),
    _s("trusted-ca-file", "trusted_ca_file", "", "Path to the client server TLS trusted CA cert file.", _S),
    _b("auto-tls", "auto_tls", "false", "Client TLS using generated certificates.", _S),
    _s("peer-cert-file", "peer_cert_file", "", "Path to the peer server TLS cert file.", _S),
    _s("peer-key-file", "peer_key_file", "", "Path to the peer server TLS key file.", _S),
    _b("peer-client-cert-auth", "peer_client_cert_auth", "false",
       "Enable peer client cert authentication.", _S),
    _s("peer-trusted-ca-file", "peer_trusted_ca_file", "",
       "Path to the peer server TLS trusted CA file.", _S),
    _s("peer-cert-allowed-cn", "peer_cert_allowed_cn", "",
       "Required CN for client certs connecting to the peer endpoint.", _S),
    _s("peer-cert-allowed-hostname", "peer_cert_allowed_hostname", "",
       "Allowed TLS hostname for inter peer authentication.", _S),
    _b("peer-auto-tls", "peer_auto_tls", "false", "Peer TLS using self-generated certificates.", _S),
    _s("peer-crl-file", "peer_crl_file", "", "Path to the peer certificate revocation list file.", _S),
    _l("cipher-suites", "cipher_suites", "", "Comma-separated list of supported TLS cipher suites.", _S,
       parse=_strings),
    _l("cors", "cors", "*", "Comma-separated whitelist of origins for CORS (empty or * means allow all).", _S,
       parse=_cors),
    _l("host-whitelist", "host_whitelist", "*",
       "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * allows all).",
       _S,
       parse=_unique_strings),
    _s("auth-token", "auth_token", "simple",
       "Specify a v3 authentication token type and its options ('simple' or 'jwt').", _A),
    _u("bcrypt-cost", "bcrypt_cost", "10", "The cost of bcrypt for hashing auth passwords (4 to 31).", _A),
    _u("auth-token-ttl", "auth_token_ttl_s", "300", "Time (in seconds) of the auth-token-ttl.", _A),
    _b("enable-pprof", "enable_pprof", "false", "Enable runtime profiling data via HTTP server.", _P),
    _s("metrics", "metrics", "basic",
       "Set level of detail for exported metrics, 'extensive' to include histograms.", _P),
    _l("listen-metrics-urls", "listen_metrics_urls", "",
       "List of URLs to listen on for the metrics and health endpoints.", _P),
    _s("logger", "logger", "capnslog", "Specify 'zap' for structured logging or 'capnslog'.", _L),
    _l("log-outputs", "log_outputs", "default",
       "Specify 'stdout' or 'stderr' to skip journald logging, or list of comma separated output targets.",
       _L,
       parse=_unique_strings),
    _l("log-output", "log_output", "default",
       "[TO BE DEPRECATED] use '--log-outputs'.", _L, parse=_unique_strings),
    _s("log-level", "log_level", "info",
       "Configures log level: debug, info, warn, error, panic, or fatal.", _L),
    _b("debug", "debug", "false",
       "[TO BE DEPRECATED] Enable debug-level logging; use '--log-level=debug'.", _L),
    _s("log-package-levels", "log_package_levels", "",
       "[TO BE DEPRECATED] A log level for each package.", _L),
    _c("proxy", "proxy", "off",
       "Proxy mode setting ('off', 'readonly' or 'on').", _X, "off", "readonly", "on"),
    _u("proxy-failure-wait", "proxy_failure_wait_ms", "5000",
       "Time (in milliseconds) an endpoint will be held in a failed state.", _X),
    _u("proxy-refresh-interval", "proxy_refresh_interval_ms", "30000",
       "Time (in milliseconds) of the endpoints refresh interval.", _X),
    _u("proxy-dial-timeout", "proxy_dial_timeout_ms", "1000",
       "Time (in milliseconds) for a dial to timeout.", _X),
    _u("proxy-write-timeout", "proxy_write_timeout_ms", "5000",
       "Time (in milliseconds) for a write to timeout.", _X),
    _u("proxy-read-timeout", "proxy_read_timeout_ms", "0",
       "Time (in milliseconds) for a read to timeout.", _X),
    _b("experimental-initial-corrupt-check", "experimental_initial_corrupt_check", "false",
       "Enable to check data corruption before serving any client/peer traffic.", _E),
    _d("experimental-corrupt-check-time", "experimental_corrupt_check_time_s", "0s",
       "Duration of time between cluster corruption check passes.", _E),
    _s("experimental-enable-v2v3", "experimental_enable_v2v3", "",
       "Serve v2 requests through the v3 backend under a given prefix.", _E),
    _s("experimental-backend-bbolt-freelist-type", "experimental_backend_bbolt_freelist_type", "array",
       "The type of freelist the backend uses (array and map are supported types).", _E),
    _b("experimental-enable-lease-checkpoint", "experimental_enable_lease_checkpoint", "false",
       "Enable the leader to send checkpoints so leases keep their remaining TTL on leader change.", _E),
    _b("experimental-enable-lease-checkpoint-persist", "experimental_enable_lease_checkpoint_persist",
       "false",
       "Persist lease checkpoints (requires --experimental-enable-lease-checkpoint).", _E),
    _d("experimental-lease-checkpoint-interval", "experimental_lease_checkpoint_interval_s", "15s",
       "How often the leader checkpoints remaining lease TTLs (etcd 3.5's flag; Flotilla always checkpoints, "
       "so a leader change or restart extends a lease by at most this much).", _E),
    _u("v2-history-size", "v2_history_size", "1000",
       "How many v2 events a watch with waitIndex can reach back (Flotilla's flag; etcd keeps 1000).", _E),
    _u("experimental-compaction-batch-limit", "experimental_compaction_batch_limit", "1000",
       "The maximum revisions deleted in each compaction batch.", _E, signed=True),
    _b("experimental-peer-skip-client-san-verification", "experimental_peer_skip_client_san_verification",
       "false",
       "Skip verification of SAN field in client certificate for peer connections.", _E),
    _d("experimental-watch-progress-notify-interval", "experimental_watch_progress_notify_interval_s", "10m",
       "Duration of periodical watch progress notification.", _E),
    _d("experimental-warning-apply-duration", "experimental_warning_apply_duration_s", "100ms",
       "Warning is generated if requests take more than this duration.", _E),
    _b("unsafe-no-fsync", "unsafe_no_fsync", "false", "Disables fsync, unsafe, will cause data loss.", _U),
    _b("force-new-cluster", "force_new_cluster", "false", "Force to create a new one-member cluster.", _U),
    _s("config-file", "config_file", "", "Path to the server configuration file (not supported yet).", _H),
    _b("version", "version", "false", "Print the version and exit.", _H),
)  # fmt: skip

# Flags of etcd 0.4/2.x that etcd 3.4 still accepts and ignores with a warning (Go: IsBoolFlag, any value).
_IGNORED_FLAGS = (
    "cluster-active-size", "cluster-remove-delay", "cluster-sync-interval", "config", "force",
    "max-result-buffer", "max-retry-attempts", "peer-heartbeat-interval", "peer-election-timeout",
    "retry-interval", "snapshot", "v", "vv",
)  # fmt: skip

_FLAGS_BY_NAME = {flag.name: flag for flag in _FLAGS} | {
    name: _Flag(name, "", str, "", "", "", is_bool=True) for name in _IGNORED_FLAGS
}
_URL_LIST_FLAGS = ("listen-peer-urls", "listen-client-urls", "listen-metrics-urls")


def env_var(flag_name: str) -> str:
    """The environment variable etcd reads for a flag: ``data-dir`` -> ``ETCD_DATA_DIR``."""
    return "ETCD_" + flag_name.upper().replace("-", "_")


def _set(values: dict[str, object], flag: _Flag, text: str, where: str) -> None:
    """Reads `text` for `flag` into `values`; `where` names the source for errors (flag -x, ETCD_X)."""
    if not flag.field:
        _log.warning('flag "-%s" is no longer supported - ignoring.', flag.name)
        return
    try:
        values[flag.field] = flag.parse(text)
    except ValueError as e:
        raise ConfigError(f"invalid value {_q(text)} for {where}: {e}") from None


def _unknown_flag(name: str) -> ConfigError:
    close = difflib.get_close_matches(name, [flag.name for flag in _FLAGS], n=1)
    hint = f"; did you mean --{close[0]}?" if close else ""
    return ConfigError(f"flag provided but not defined: -{name}{hint} (see 'flotilla etcd --help')")


def _parse_command_line(argv: list[str], values: dict[str, object]) -> set[str]:
    """Go's FlagSet.Parse into `values`; returns the names of the flags given. Errors in argument order,
    as Go reports the first problem it meets."""
    given: set[str] = set()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if len(arg) < 2 or arg[0] != "-":
            break
        i += 1
        if arg == "--":
            break
        name = arg[2:] if arg[1] == "-" else arg[1:]
        if not name or name[0] in "-=":
            raise ConfigError(f"bad flag syntax: {arg} (flags look like --name=value or -name value)")
        name, has_value, text = name.partition("=")
        flag = _FLAGS_BY_NAME.get(name)
        if flag is None:
            if name in ("help", "h"):
                raise HelpRequested()
            raise _unknown_flag(name)
        if flag.is_bool:
            if not has_value:
                text = "true"
        elif not has_value:
            if i == len(argv):
                raise ConfigError(f"flag needs an argument: -{name} (give it as --{name}=<value>)")
            text, i = argv[i], i + 1
        _set(values, flag, text, f"flag -{name}")
        given.add(name)
    if i < len(argv):
        raise ConfigError(_positional_message(argv[i]))
    return given


def _positional_message(arg: str) -> str:
    if arg in ("gateway", "grpc-proxy"):
        return f"'etcd {arg}' is not supported by flotilla etcd"
    if arg.lower() in ("true", "false", "t", "f", "0", "1"):
        hint = "a boolean flag takes its value as --flag=false, not --flag false"
    elif arg.startswith("-"):
        hint = "arguments after -- are not read as flags"
    else:
        hint = "flags start with - or --, and every flag needs its own dash"
    return f"error verifying flags, '{arg}' is not a valid flag ({hint}). See 'flotilla etcd --help'."


def _apply_environment(environ: Mapping[str, str], values: dict[str, object], given: set[str]) -> set[str]:
    """etcd's SetFlagsFromEnv: each flag not given reads ETCD_<FLAG> when set and not empty; returns the
    names of the flags set from the environment."""
    from_env: set[str] = set()
    known: set[str] = set()
    for flag in _FLAGS_BY_NAME.values():
        key = env_var(flag.name)
        known.add(key)
        text = environ.get(key, "")
        if not text:
            continue
        if flag.name in given:
            _log.warning("environment variable %s=%s is shadowed by the command-line flag --%s, which wins "
                         "(etcd 3.4 refuses to start in this case)", key, text, flag.name)
            continue
        hint = "; ETCD_VERSION is the boolean --version flag, unset it" if flag.name == "version" else ""
        try:
            # etcd reads ETCD_VERSION only after deciding whether to print the version: checked, no effect.
            _set({} if flag.name == "version" else values, flag, text, key)
        except ConfigError as e:
            raise ConfigError(f"error verifying flags, {e}{hint}") from None
        from_env.add(flag.name)
        _log.info("recognized and used environment variable %s=%s", key, text)
    for key, text in environ.items():
        if key.startswith("ETCD_") and key not in known:
            _log.warning("unrecognized environment variable %s=%s", key, text)
    return from_env


def _check_bind_urls(flag_name: str, urls: tuple[str, ...]) -> None:
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("unix", "unixs"):
            continue
        host, _ = _split_host_port(parts.netloc.rpartition("@")[2])
        if host == "localhost":
            continue
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"expected IP in URL for binding ({url}) in --{flag_name}; listen on an IP "
                              "address (or localhost) and advertise the host name instead") from None


def _check_host_urls(flag_name: str, urls: tuple[str, ...]) -> None:
    for url in urls:
        host, _ = _split_host_port(urlsplit(url).netloc.rpartition("@")[2])
        if not host:
            listed = _q(",".join(urls))
            raise ConfigError(f'--{flag_name} {listed} must be "host:port" (unexpected empty host '
                              f"({url})); advertise an address other members and clients can reach")


def _validate(c: EtcdConfig) -> None:
    """etcd's embed.Config.Validate and the checks etcd makes while starting, on the parsed values."""
    if c.logger not in ("zap", "capnslog"):
        raise ConfigError(f"unknown logger option {_q(c.logger)}; use --logger=zap or --logger=capnslog")
    if c.log_level not in _LOG_LEVELS:
        levels = ", ".join(_LOG_LEVELS)
        raise ConfigError(f"unknown log level {_q(c.log_level)} for --log-level; use one of {levels}")
    for name in _URL_LIST_FLAGS:
        _check_bind_urls(name, getattr(c, name.replace("-", "_")))
    _check_host_urls("initial-advertise-peer-urls", c.initial_advertise_peer_urls)
    _check_host_urls("advertise-client-urls", c.advertise_client_urls)
    if sum(bool(v) for v in (c.discovery, c.initial_cluster, c.discovery_srv)) > 1:
        raise ConfigError('multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", '
                          '"discovery" or "discovery-srv"')
    if c.heartbeat_interval_ms <= 0:
        raise ConfigError(f"--heartbeat-interval must be >0 (set to {c.heartbeat_interval_ms}ms)")
    if c.election_timeout_ms <= 0:
        raise ConfigError(f"--election-timeout must be >0 (set to {c.election_timeout_ms}ms)")
    if 5 * c.heartbeat_interval_ms > c.election_timeout_ms:
        raise ConfigError(f"--election-timeout[{c.election_timeout_ms}ms] should be at least as 5 times as "
                          f"--heartbeat-interval[{c.heartbeat_interval_ms}ms]; raise the election timeout "
                          "or lower the heartbeat interval")
    if c.election_timeout_ms > _MAX_ELECTION_MS:
        raise ConfigError(f"--election-timeout[{c.election_timeout_ms}ms] is too long, and should be set "
                          f"less than {_MAX_ELECTION_MS}ms")
    may_be_proxy = c.proxy != "off" or (bool(c.discovery) and c.discovery_fallback == "proxy")
    if c.listen_client_urls and not c.advertise_client_urls and not may_be_proxy:
        raise ConfigError("--advertise-client-urls is required when --listen-client-urls is set explicitly. "
                          "When listening on specific address(es), this etcd process must advertise "
                          "accessible url(s) to each connected client.")
    if c.auto_compaction_mode not in ("", "periodic", "revision"):
        mode = c.auto_compaction_mode
        raise ConfigError(f"unknown auto-compaction-mode {_q(mode)}; use periodic or revision")
    c.auto_compaction_retention_value()
    if c.experimental_enable_lease_checkpoint_persist and not c.experimental_enable_lease_checkpoint:
        raise ConfigError("setting experimental-enable-lease-checkpoint-persist requires "
                          "experimental-enable-lease-checkpoint")
    if c.initial_cluster:
        _checked_initial_cluster(c.initial_cluster)
    if c.config_file:
        raise ConfigError(f"--config-file {_q(c.config_file)}: flotilla etcd does not read configuration "
                          "files; pass the settings as flags or ETCD_* environment variables")


def _checked_initial_cluster(text: str) -> dict[str, tuple[str, ...]]:
    try:
        return parse_initial_cluster(text)
    except ValueError as e:
        raise ConfigError(f"error setting up initial cluster: {e} (in --initial-cluster={_q(text)}; "
                          "use name=http://host:port,name=http://host:port)") from None


def parse_initial_cluster(text: str) -> dict[str, tuple[str, ...]]:
    """etcd's types.NewURLsMap: comma-separated ``name=url``; a name may repeat; its URLs come sorted."""
    members: dict[str, list[str]] = {}
    for pair in text.split(","):
        if not pair:
            continue
        name, _, url = pair.partition("=")
        members.setdefault(name, []).append(validate_url(url))
    return {name: tuple(sorted(urls)) for name, urls in members.items()}


def _format_members(members: Mapping[str, tuple[str, ...]]) -> str:
    return ",".join(sorted(f"{name}={url}" for name, urls in members.items() for url in urls))


def _parse_retention(mode: str, retention: str) -> float | int:
    if retention.isdigit():  # strconv.Atoi and >= 0
        hours_or_revisions = int(retention)
        return hours_or_revisions if mode == "revision" else hours_or_revisions * 3600.0
    return _go_duration(retention)


def _defaults_for_name(c: EtcdConfig) -> EtcdConfig:
    """What etcd fills in after validation: the default data dir and initial cluster follow --name."""
    changes: dict[str, object] = {}
    if c.name != "default" and c.initial_cluster == EtcdConfig.initial_cluster:
        changes["initial_cluster"] = ",".join(f"{c.name}={url}" for url in c.initial_advertise_peer_urls)
    if not c.data_dir:
        changes["data_dir"] = f"{c.name}.etcd"
        _log.warning("no data-dir provided, using default data-dir ./%s", changes["data_dir"])
    return dataclasses.replace(c, **changes) if changes else c


def parse_args(argv: list[str], environ: Mapping[str, str]) -> EtcdConfig:
    """The configuration etcd 3.4 would run with for these arguments and environment (see the module
    docstring for the syntax). Raises HelpRequested for -h/--help and ConfigError for anything etcd refuses.
    With ``--version`` returns at once (``version`` is True) without reading the environment or checking.
    Logs what etcd logs while parsing (variables used, unrecognized or shadowed, ignored flags) on this
    module's logger. Looks at the disk only to see whether the member has a WAL: a member without one is
    checked against ``--initial-cluster`` (:meth:`EtcdConfig.verify_bootstrap`)."""
    values: dict[str, object] = {}
    given = _parse_command_line(list(argv), values)
    if values.get("version"):
        return EtcdConfig(version=True)
    if "config-file" not in given and environ.get(env_var("config-file")):
        given.add("config-file")
        values["config_file"] = environ[env_var("config-file")]
    explicit = given | _apply_environment(environ, values, given)
    # etcd drops the defaults that explicit settings make wrong: advertise URLs for explicit listen URLs,
    # the default initial cluster when discovery provides the members.
    if "listen-client-urls" in explicit and "advertise-client-urls" not in explicit:
        values["advertise_client_urls"] = ()
    if (values.get("discovery") or values.get("discovery_srv") or values.get("discovery_srv_name")) and (
        "initial-cluster" not in explicit
    ):
        values["initial_cluster"] = ""
    if values.get("bcrypt_cost", _DEFAULT_BCRYPT_COST) not in _BCRYPT_COST_RANGE:
        # etcd's auth store falls back to the default cost rather than refusing to start.
        _log.warning("Use default bcrypt-cost %d instead of the invalid value %s", _DEFAULT_BCRYPT_COST,
                     values["bcrypt_cost"])
        values["bcrypt_cost"] = _DEFAULT_BCRYPT_COST
    config = EtcdConfig(**values)  # type: ignore[arg-type]
    _validate(config)
    config = _defaults_for_name(config)
    if not config.is_member_initialized() and config.proxy == "off":
        config.verify_bootstrap()  # a proxy is no member: it only reads the cluster's peer URLs
    return config


def usage() -> str:
    """The ``--help`` text: every flag with its default and environment variable, grouped as etcd does."""
    lines = [
        "Usage:",
        "",
        "  flotilla etcd [flags]",
        "    Start an etcd 3.4 compatible store member. Flags follow Go's syntax: -flag, --flag,",
        "    -flag=value, --flag value; booleans as --flag or --flag=false. Every flag also reads the",
        "    environment variable shown beside it; a flag on the command line wins.",
        "",
        "  flotilla etcd --version",
        "    Show the version of etcd this member is compatible with.",
        "",
        "  flotilla etcd -h | --help",
        "    Show this help.",
    ]
    group = None
    for flag in _FLAGS:
        if flag.group != group:
            group = flag.group
            lines += ["", f"{group}:"]
        lines.append(f"  --{flag.name} '{flag.default}'  [{env_var(flag.name)}]")
        lines.append(f"    {flag.help}")
    lines += ["", "CAUTIOUS with unsafe flags! They may break the guarantees of the consensus protocol!"]
    return "\n".join(lines) + "\n"


def version_text() -> str:
    """What ``--version`` prints: etcd's first line (tools parse ``etcd Version: X``), then Flotilla's."""
    return (
        f"etcd Version: {ETCD_VERSION}\n"
        f"API Version: {ETCD_API_VERSION}\n"
        f"Flotilla Version: {__version__}\n"
        f"Python Version: {platform.python_version()}\n"
        f"OS/Arch: {sys.platform}/{platform.machine()}\n"
    )

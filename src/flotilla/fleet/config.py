"""fleetd's configuration as fleet reads it: defaults, then an INI-style config file (``key=value`` at the
top level), then ``FLEET_<KEY>`` environment variables, then command-line flags (``--etcd_servers=...``,
``--etcd-servers ...``) — each overriding the one before, as fleet documents.

Some settings are Flotilla's own: ``systemd_root`` (the root of the local unit manager that runs units,
``flotilla systemd --root``), ``api_socket``/``api_listen`` (where fleet's HTTP API is served) with
``api_certfile``/``api_keyfile``/``api_cafile`` (TLS, and client certificates, on the TCP listener), and
``restart_grace`` (how long a stopped fleetd keeps its machine present so a restart moves nothing).
Defaults differ from fleet's where the issue asks for better failover: ``agent_ttl`` is 2s (fleet: 30s),
so a dead machine's units run elsewhere within about 5 s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

__all__ = ["ConfigError", "FleetConfig", "load_config", "parse_duration_s", "parse_metadata"]


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it and where it came from."""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(text: str) -> float:
    """Go's time.ParseDuration (``30s``, ``1m30s``, ``500ms``); a bare number means seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS_S[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 1m30s, 500ms)")
    return total


def parse_metadata(text: str) -> dict[str, str]:
    """``region=us-west,az=us-west-1`` into a dict."""
    metadata: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"metadata entry {pair!r} is not key=value")
        metadata[key.strip()] = value.strip()
    return metadata


@dataclass(frozen=True)
class FleetConfig:
    etcd_servers: tuple[str, ...] = ("http://127.0.0.1:2379",)
    etcd_key_prefix: str = "/_coreos.com/fleet/"
    etcd_request_timeout: float = 3.0
    etcd_cafile: str = ""
    etcd_certfile: str = ""
    etcd_keyfile: str = ""
    public_ip: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    agent_ttl: float = 2.0
    engine_reconcile_interval: float = 2.0
    agent_reconcile_interval: float = 1.0
    disable_engine: bool = False
    token_limit: int = 100
    verbosity: int = 0
    systemd_root: str = "/"
    api_socket: str = ""  # default: <systemd_root>/run/fleet.sock (fleet: /var/run/fleet.sock)
    api_listen: str = ""  # host:port for TCP as well (off by default: fleet's API has no authentication)
    api_certfile: str = ""  # serve api_listen over TLS with this certificate ...
    api_keyfile: str = ""  # ... and key
    api_cafile: str = ""  # and require client certificates signed by this CA
    restart_grace: float = 10.0  # how long a stopped fleetd keeps its machine present for a restart
    machine_id: str = ""  # default: <systemd_root>/etc/machine-id

    @property
    def api_socket_path(self) -> Path:
        return Path(self.api_socket) if self.api_socket else Path(self.systemd_root) / "run/fleet.sock"


OPTIONS = tuple(f.name for f in fields(FleetConfig))


def _convert(name: str, raw: str, source: str) -> object:
    try:
        if name == "etcd_servers":
            servers = tuple(s.strip() for s in raw.strip("[]").replace('"', "").split(",") if s.strip())
            if not servers:
                raise ValueError("no servers given")
            return servers
        if name == "metadata":
            return parse_metadata(raw.strip('"'))
        if name in (
            "agent_ttl",
            "engine_reconcile_interval",
            "agent_reconcile_interval",
            "etcd_request_timeout",
            "restart_grace",
        ):
            value = parse_duration_s(raw.strip('"'))
            if value <= 0:
                raise ValueError("must be positive")
            return value
        if name in ("token_limit", "verbosity"):
            return int(raw)
        if name == "disable_engine":
            if raw.lower() not in ("1", "0", "true", "false", "t", "f", "yes", "no"):
                raise ValueError("not a boolean")
            return raw.lower() in ("1", "true", "t", "yes")
        return raw.strip('"')
    except ValueError as error:
        raise ConfigError(f"{source}: {name}={raw!r}: {error}") from None


def _read_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            raise ConfigError(f"{path}:{number}: options must be outside any [section], as fleet requires")
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected key=value, got {line!r}")
        key = key.strip().replace("-", "_")
        if key not in OPTIONS:
            raise ConfigError(f"{path}:{number}: unknown option {key!r}")
        values[key] = value.strip()
    return values


def load_config(
    *, config_file: str | None, env: Mapping[str, str], flags: Mapping[str, str | None]
) -> FleetConfig:
    """Merge the sources in fleet's order; ``flags`` holds only options given on the command line."""
    config = FleetConfig()
    layers: list[tuple[str, dict[str, str]]] = []
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        layers.append((str(path), _read_file(path)))
    layers.append(
        ("environment", {n: env[f"FLEET_{n.upper()}"] for n in OPTIONS if f"FLEET_{n.upper()}" in env})
    )
    layers.append(("command line", {n: v for n, v in flags.items() if v is not None}))
    for source, values in layers:
        converted = {name: _convert(name, raw, source) for name, raw in values.items()}
        config = replace(config, **converted)
    if (config.api_certfile or config.api_keyfile or config.api_cafile) and not config.api_listen:
        raise ConfigError("api_certfile/api_keyfile/api_cafile secure the TCP listener: set api_listen too")
    if bool(config.api_certfile) != bool(config.api_keyfile):
        raise ConfigError("api_certfile and api_keyfile go together: give both, or neither")
    if config.api_cafile and not config.api_certfile:
        raise ConfigError("api_cafile (client certificates) needs TLS: set api_certfile and api_keyfile")
    return config

"""The units a CoreOS image ships (etcd.service, etcd2.service, fleet.service) and the drop-ins that turn a
cloud-config's daemon settings into what Flotilla's daemons read (pure: text in, text out).

Precedence is systemd's: the vendor unit's ``Environment=`` lines hold the machine's defaults, the
cloud-config's ``20-cloudinit.conf`` overrides them, and this module's ``30-flotilla.conf`` comes last.
Defaults therefore live in ``Environment=`` and never as command-line flags, because a flag would win over
every ``ETCD_*``/``FLEET_*`` variable a cloud-config sets (both daemons let flags win).

``coreos.etcd`` describes etcd 0.4 (``addr``, ``peer-addr``, ``bind-addr``, ...), which ``flotilla etcd``
(etcd 3.4's flags) does not read: :func:`etcd04_environment` translates those settings. etcd 0.4 listened
where it advertised unless ``bind-addr``/``peer-bind-addr`` said otherwise, and took the port of the
advertised address when a bind address had none; URLs are ``https`` once a certificate is configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DROP_IN_NAME = "30-flotilla.conf"  # sorts after coreos-cloudinit's 20-cloudinit.conf, so it is applied last
ETCD_CLIENT_PORT = 2379  # etcd 3.4's defaults: the machine's member listens on its own address
ETCD_PEER_PORT = 2380
_RESTART_SEC = "2s"


@dataclass(frozen=True)
class VendorContext:
    """What the vendor units need to know about the machine they are written for."""

    root: str  # absolute path of the machine's root directory
    python: str  # the interpreter that runs `-m flotilla ...`
    ip: str  # private address: where the member listens by default
    public_ip: str  # what fleet advertises (fleetctl's MACHINE column)
    machine_id: str  # the member's default name, as CoreOS's etcd2.service used %m


class VendorError(ValueError):
    """A setting that cannot be turned into a unit (the message says which and what to do)."""


# --- quoting for unit files -------------------------------------------------------------------------------


def _env_line(name: str, value: str) -> str:
    # Inside systemd's quotes \ and " are escapes; % starts a specifier everywhere in a unit file.
    text = f"{name}={value}".replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'Environment="{text}"'


def _exec_word(word: str) -> str:
    # $ would be expanded by the manager and % is a specifier: both doubled; quotes keep blanks in paths.
    text = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{text}"'


def _exec_line(python: str, *args: str) -> str:
    if "%" in python or not python.startswith("/"):
        raise VendorError(
            f"{python}: the interpreter path must be absolute and contain no '%' to be a unit's ExecStart; "
            "run flotilla from an interpreter installed under such a path"
        )
    return "ExecStart=" + " ".join([_exec_word(python), *(_exec_word(a) for a in args)])


# --- vendor units -----------------------------------------------------------------------------------------


def etcd_unit(context: VendorContext, service: str) -> str:
    """``etcd.service`` or ``etcd2.service``: a Flotilla member with the machine's defaults."""
    data_dir = f"{context.root}/var/lib/{service.removesuffix('.service')}"
    other = "etcd2.service" if service == "etcd.service" else "etcd.service"
    client = f"http://{_host(context.ip)}:{ETCD_CLIENT_PORT}"
    peer = f"http://{_host(context.ip)}:{ETCD_PEER_PORT}"
    lines = [
        "[Unit]",
        f"Description=etcd member ({service.removesuffix('.service')}), Flotilla's store",
        f"Conflicts={other}",
        "",
        "[Service]",
        "Type=simple",
        _env_line("ETCD_NAME", context.machine_id),
        _env_line("ETCD_DATA_DIR", data_dir),
        _env_line("ETCD_LISTEN_CLIENT_URLS", client),
        _env_line("ETCD_ADVERTISE_CLIENT_URLS", client),
        _env_line("ETCD_LISTEN_PEER_URLS", peer),
        _env_line("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer),
        # fleet's registry and the seeds' tutorials use the v2 API as well as v3.
        _env_line("ETCD_ENABLE_V2", "true"),
        _exec_line(context.python, "-m", "flotilla", "etcd"),
        "Restart=always",
        f"RestartSec={_RESTART_SEC}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def fleet_unit(context: VendorContext, etcd_servers: Sequence[str]) -> str:
    """``fleet.service``: fleetd driving this machine's unit manager, talking to this machine's member.

    ``After=`` on both etcd units is what orders a shutdown: the manager stops fleet before the store."""
    lines = [
        "[Unit]",
        "Description=fleet daemon",
        "After=etcd.service etcd2.service",
        "",
        "[Service]",
        "Type=simple",
        _env_line("FLEET_SYSTEMD_ROOT", context.root),
        _env_line("FLEET_ETCD_SERVERS", ",".join(etcd_servers)),
        _env_line("FLEET_PUBLIC_IP", context.public_ip),
        _exec_line(context.python, "-m", "flotilla", "fleetd"),
        "Restart=always",
        f"RestartSec={_RESTART_SEC}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def vendor_units(context: VendorContext, etcd_servers: Sequence[str]) -> dict[str, str]:
    """Every vendor unit by name, for ``<root>/lib/systemd/system``."""
    return {
        "etcd.service": etcd_unit(context, "etcd.service"),
        "etcd2.service": etcd_unit(context, "etcd2.service"),
        "fleet.service": fleet_unit(context, etcd_servers),
    }


# --- drop-ins over the cloud-config's settings ------------------------------------------------------------


def _settings(raw: Mapping[str, str]) -> dict[str, str]:
    # cloud-config treats - and _ alike in key names; one spelling here.
    return {key.replace("_", "-"): value for key, value in raw.items()}


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def _split_host_port(address: str, section: str, key: str) -> tuple[str, str]:
    """``host:port`` (``[v6]:port``) → (host, port); port "" when absent."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return f"[{host}]", rest.removeprefix(":")
    if address.count(":") > 1:
        return f"[{address}]", ""
    host, _, port = address.partition(":")
    if port and not port.isdigit():
        raise VendorError(f"coreos.{section}.{key}: {address!r} has no numeric port; write it as host:port")
    return host, port


def _bind_url(bind: str | None, advertised: str, scheme: str, section: str, key: str) -> str:
    """etcd 0.4's listen address: the bind address (port taken from the advertised one) or the advertised."""
    if not bind:
        return f"{scheme}://{advertised}"
    host, port = _split_host_port(bind, section, key)
    if not port:
        port = _split_host_port(advertised, section, key)[1]
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def rebase(root: str, path: str) -> str:
    """An absolute machine path (``/var/lib/etcd``) as a path under the machine's root directory."""
    return path if not path.startswith("/") or path.startswith(root + "/") else root + path


def etcd04_environment(raw: Mapping[str, str], root: str) -> dict[str, str]:
    """etcd 3.4 variables for the etcd 0.4 settings of ``coreos.etcd`` (keys as cloud-config wrote them).

    Settings that 0.4 and 3.4 name alike (``name``, ``discovery``, ``cors``, ``cert-file``, ``key-file``)
    already reach the member through 20-cloudinit.conf; ``data-dir`` is moved under the machine's root."""
    settings = _settings(raw)
    env: dict[str, str] = {}
    client_scheme = "https" if settings.get("cert-file") else "http"
    peer_scheme = "https" if settings.get("peer-cert-file") else "http"
    addr = settings.get("addr")
    if addr:
        env["ETCD_ADVERTISE_CLIENT_URLS"] = f"{client_scheme}://{addr}"
        env["ETCD_LISTEN_CLIENT_URLS"] = _bind_url(
            settings.get("bind-addr"), addr, client_scheme, "etcd", "bind-addr"
        )
    peer_addr = settings.get("peer-addr")
    if peer_addr:
        env["ETCD_INITIAL_ADVERTISE_PEER_URLS"] = f"{peer_scheme}://{peer_addr}"
        env["ETCD_LISTEN_PEER_URLS"] = _bind_url(
            settings.get("peer-bind-addr"), peer_addr, peer_scheme, "etcd", "peer-bind-addr"
        )
    if settings.get("ca-file"):  # 0.4 checked client certificates against its CA; 3.4 says so in two flags
        env["ETCD_TRUSTED_CA_FILE"] = settings["ca-file"]
        env["ETCD_CLIENT_CERT_AUTH"] = "true"
    if settings.get("peer-ca-file"):
        env["ETCD_PEER_TRUSTED_CA_FILE"] = settings["peer-ca-file"]
        env["ETCD_PEER_CLIENT_CERT_AUTH"] = "true"
    renamed = {
        "peer-cert-file": "ETCD_PEER_CERT_FILE",
        "peer-key-file": "ETCD_PEER_KEY_FILE",
        "snapshot-count": "ETCD_SNAPSHOT_COUNT",
        "peer-heartbeat-interval": "ETCD_HEARTBEAT_INTERVAL",
        "peer-election-timeout": "ETCD_ELECTION_TIMEOUT",
    }
    for key, name in renamed.items():
        if settings.get(key):
            env[name] = settings[key]
    if settings.get("data-dir"):
        env["ETCD_DATA_DIR"] = rebase(root, settings["data-dir"])
    return env


def etcd2_environment(raw: Mapping[str, str], root: str) -> dict[str, str]:
    """What ``coreos.etcd2`` needs beyond 20-cloudinit.conf: its directories moved under the machine root."""
    settings = _settings(raw)
    env = {}
    for key, name in (("data-dir", "ETCD_DATA_DIR"), ("wal-dir", "ETCD_WAL_DIR")):
        if settings.get(key):
            env[name] = rebase(root, settings[key])
    return env


def fleet_environment(raw: Mapping[str, str], root: str) -> dict[str, str]:
    """fleet's metadata plus ``flotilla_systemd_root`` (fleetctl status/journal find the machine by it)."""
    metadata = _settings(raw).get("metadata", "").strip().strip(",")
    extra = f"flotilla_systemd_root={root}"
    return {"FLEET_METADATA": f"{metadata},{extra}" if metadata else extra}


def drop_in(env: Mapping[str, str]) -> str:
    """A ``[Service]`` drop-in setting ``env`` (in the given order)."""
    return "\n".join(["[Service]", *(_env_line(k, v) for k, v in env.items())]) + "\n"


def client_urls(etcd: Mapping[str, str], etcd2: Mapping[str, str], ip: str) -> tuple[str, ...]:
    """The client URLs of this machine's member, for fleet's default ``etcd_servers``.

    coreos.etcd2 wins over coreos.etcd (the newer section is what a config with both means to run); the
    advertised URLs are preferred, then listen URLs with a wildcard host replaced by the machine's address."""
    etcd2 = _settings(etcd2)
    if etcd2:
        urls = etcd2.get("advertise-client-urls") or etcd2.get("listen-client-urls")
        if urls:
            return tuple(_concrete(u.strip(), ip) for u in urls.split(",") if u.strip())
    translated = etcd04_environment(etcd, "/") if etcd else {}
    if translated.get("ETCD_ADVERTISE_CLIENT_URLS"):
        return (_concrete(translated["ETCD_ADVERTISE_CLIENT_URLS"], ip),)
    return (f"http://{_host(ip)}:{ETCD_CLIENT_PORT}",)


def _concrete(url: str, ip: str) -> str:
    for wildcard in ("0.0.0.0", "[::]"):
        url = url.replace(f"//{wildcard}", f"//{_host(ip)}")
    return url

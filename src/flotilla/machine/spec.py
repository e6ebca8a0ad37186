"""``MachineSpec``: everything that tells one machine from another before it boots, and the checks that
must pass before anything is written under its root."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from flotilla.cloudinit import CloudConfig, CloudConfigError, parse

from .errors import BootError

NETNS_DIR = Path("/run/netns")  # where `ip netns add NAME` puts the namespace's handle


@dataclass(frozen=True)
class MachineSpec:
    """One machine: its root directory, its cloud-config file and its addresses.

    ``ip`` is the private address (``$private_ipv4``, where its member listens by default); ``public_ip``
    (``$public_ipv4``, what fleet advertises) defaults to it. With ``netns`` the machine's processes run
    in that existing network namespace (``ip netns add NAME``), so ``ip`` is an address inside it."""

    root: Path
    cloud_config: Path
    ip: str = "127.0.0.1"
    public_ip: str | None = None
    netns: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).absolute())
        object.__setattr__(self, "cloud_config", Path(self.cloud_config))

    @property
    def advertised_ip(self) -> str:
        return self.public_ip or self.ip

    @property
    def substitutions(self) -> dict[str, str]:
        """``$private_ipv4``/``$public_ipv4`` (and v6 when the address is one) for the cloud-config."""
        values = {"private_ipv4": "", "public_ipv4": "", "private_ipv6": "", "public_ipv6": ""}
        for kind, address in (("private", self.ip), ("public", self.advertised_ip)):
            version = ipaddress.ip_address(address).version
            values[f"{kind}_ipv{version}"] = address
        return values

    @property
    def netns_path(self) -> Path | None:
        return NETNS_DIR / self.netns if self.netns else None


def check_spec(spec: MachineSpec) -> None:
    """BootError for addresses, names or files that cannot work; nothing is written."""
    for what, address in (("--ip", spec.ip), ("--public-ip", spec.advertised_ip)):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise BootError(f"{what} {address!r} is not an IP address; give one such as 127.0.0.2") from None
    if spec.netns is not None:
        if not spec.netns or "/" in spec.netns or spec.netns.startswith("."):
            raise BootError(f"--netns {spec.netns!r} is not a namespace name (as `ip netns list` shows them)")
        assert spec.netns_path is not None
        if not spec.netns_path.exists():
            raise BootError(
                f"network namespace {spec.netns!r} does not exist ({spec.netns_path} is missing); "
                f"create it with: ip netns add {spec.netns}"
            )
    if spec.root.exists() and not spec.root.is_dir():
        raise BootError(f"{spec.root}: the machine root is not a directory; pick another --root")


def load_cloud_config(spec: MachineSpec) -> CloudConfig:
    """The machine's cloud-config, validated and substituted; BootError with every ``file:line`` error."""
    source = str(spec.cloud_config)
    try:
        text = spec.cloud_config.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BootError(f"{source}: no such cloud-config file; check the --cloud-config path") from None
    except UnicodeDecodeError as error:
        raise BootError(f"{source}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except OSError as error:
        raise BootError(f"{source}: cannot read the cloud-config ({error.strerror})") from None
    try:
        return parse(text, source=source, substitutions=spec.substitutions)
    except CloudConfigError as error:
        raise BootError(str(error)) from error

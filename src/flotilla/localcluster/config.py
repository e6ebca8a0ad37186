"""The cloud-configs a local cluster boots from (pure: text in, text out).

Every machine of a CoreOS cluster boots from the same user-data, which ``$private_ipv4`` makes its own;
``flotilla up`` writes one file per machine only so that the default config can give fleet a readable
``machine=m<i>`` metadata and the member a readable name, which ``flotilla status`` and ``fleetctl``
then show.
"""

from __future__ import annotations

import re

MACHINE_PREFIX = "m"  # machines are m1, m2, ... on 127.0.0.2, 127.0.0.3, ...
DEFAULT_CLIENT_PORT = 2379  # etcd's own: each machine has its own loopback address, so they do not clash
DEFAULT_PEER_PORT = 2380
MAX_MACHINES = 250  # 127.0.0.2 .. 127.0.0.251

# `discovery: <url>` in coreos.etcd or coreos.etcd2 (discovery_srv and friends are other keys); the value
# may be quoted. Replaced in place so the user's comments and line numbers stay as they wrote them.
_DISCOVERY_LINE = re.compile(
    r"""^(?P<lead>[ \t]+discovery[ \t]*:[ \t]*)(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s#]+)""", re.MULTILINE
)


def machine_name(index: int) -> str:
    """``m1`` for index 0."""
    return f"{MACHINE_PREFIX}{index + 1}"


def machine_ip(index: int) -> str:
    """The loopback address of machine ``index`` (0-based): 127.0.0.2 for m1; all of 127/8 works on Linux
    without setup, and 127.0.0.1 is left to whatever else runs on the host."""
    if not 0 <= index < MAX_MACHINES:
        raise ValueError(f"machine index {index} out of range (at most {MAX_MACHINES} machines)")
    return f"127.0.0.{index + 2}"


def default_cloud_config(index: int, discovery_url: str, client_port: int, peer_port: int) -> str:
    """The cloud-config ``flotilla up`` boots machine ``index`` from when the user gives none: the seeds'
    Listing 1 in coreos.etcd2 form. The vendor etcd2.service already serves the v2 API (curl /v2/keys)."""
    name = machine_name(index)
    return f"""\
#cloud-config
# Written by `flotilla up` for machine {name}; $private_ipv4 is the machine's address.
hostname: {name}
coreos:
  etcd2:
    name: {name}
    discovery: {discovery_url}
    advertise-client-urls: http://$private_ipv4:{client_port}
    listen-client-urls: http://$private_ipv4:{client_port}
    initial-advertise-peer-urls: http://$private_ipv4:{peer_port}
    listen-peer-urls: http://$private_ipv4:{peer_port}
  fleet:
    public-ip: $private_ipv4
    metadata: machine={name}
  units:
    - name: etcd2.service
      command: start
    - name: fleet.service
      command: start
"""


def replace_discovery(text: str, discovery_url: str) -> tuple[str, int]:
    """The user's cloud-config with every ``discovery:`` URL replaced by ``discovery_url`` (a token of
    the local discovery service), and how many were replaced; nothing else changes."""

    def swap(match: re.Match[str]) -> str:
        return match.group("lead") + discovery_url

    return _DISCOVERY_LINE.subn(swap, text)

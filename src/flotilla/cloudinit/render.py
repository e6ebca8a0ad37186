"""The text of every file a cloud-config produces, from the config and the files' old text (pure).

apply.py reads the old files, calls these, and writes the results; keeping the text here keeps the merge
rules (which mirror coreos-cloudinit's system/*.go) testable without a filesystem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from . import schema
from .model import OEM, Settings, Update, User

# The systemd service each coreos.<section> configures through a 20-cloudinit.conf drop-in.
SECTION_SERVICES = {
    "etcd": "etcd.service",
    "etcd2": "etcd2.service",
    "fleet": "fleet.service",
    "flannel": "flanneld.service",
    "locksmith": "locksmithd.service",
}
ENVIRONMENT_NAMES = {
    "private_ipv4": "COREOS_PRIVATE_IPV4",
    "public_ipv4": "COREOS_PUBLIC_IPV4",
    "private_ipv6": "COREOS_PRIVATE_IPV6",
    "public_ipv6": "COREOS_PUBLIC_IPV6",
}
_ENV_LINE_KEY = re.compile(r"^([A-Za-z0-9_]+)=")


def env_name(section: str, key: str) -> str:
    """``peer-addr`` of coreos.etcd → ETCD_PEER_ADDR (or the name the daemon really reads, see schema)."""
    canonical = key.replace("-", "_")
    spec = schema.SECTION_SCHEMAS[section].fields.get(canonical)
    if spec is not None and spec.env:
        return spec.env
    return schema.ENV_PREFIXES[section] + canonical.upper()


def drop_in_text(section: str, settings: Settings) -> str:
    """``[Service]`` with one ``Environment="NAME=value"`` line per setting, in the document's order."""
    lines = ["[Service]"]
    for key, value in settings:
        # Inside systemd's double quotes \ and " are escapes, and % starts a specifier everywhere.
        quoted = f"{env_name(section, key)}={value}".replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'Environment="{quoted.replace("%", "%%")}"')
    return "\n".join(lines) + "\n"


def environment_vars(values: Mapping[str, str]) -> dict[str, str]:
    """COREOS_* variables for /etc/environment from the substitution values that are not empty."""
    result = {}
    for name, variable in ENVIRONMENT_NAMES.items():
        value = values.get(name) or values.get("$" + name) or ""
        if value:
            result[variable] = value
    return result


def merge_environment(old: str, pending: Mapping[str, str]) -> str:
    """Replace ``KEY=`` lines of ``old`` in place, keep every other line, append new keys sorted."""
    left = dict(pending)
    out = []
    for line in old.splitlines():
        match = _ENV_LINE_KEY.match(line)
        if match and match.group(1) in left:
            out.append(f"{match.group(1)}={left.pop(match.group(1))}")
        else:
            out.append(line)
    out.extend(f"{key}={left[key]}" for key in sorted(left))
    return "\n".join(out) + "\n"


def merge_update_conf(old: str, update: Update) -> str:
    """/etc/coreos/update.conf: lines for the given keys replaced where they were, the rest appended."""
    given = {
        "REBOOT_STRATEGY": update.reboot_strategy,
        "GROUP": update.group,
        "SERVER": update.server,
    }
    return merge_environment(old, {k: v for k, v in given.items() if v})


def oem_release(oem: OEM) -> str:
    """/etc/oem-release in os-release syntax (the free-text fields quoted)."""
    return (
        f"ID={oem.id}\nVERSION_ID={oem.version_id or ''}\nNAME={_quote(oem.name)}\n"
        f"HOME_URL={_quote(oem.home_url)}\nBUG_REPORT_URL={_quote(oem.bug_report_url)}\n"
    )


def _quote(value: str | None) -> str:
    return '"' + (value or "").replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorized_keys(keys: Iterable[str]) -> str:
    return "".join(key.strip() + "\n" for key in keys)


# --- /etc/passwd, /etc/group, /etc/shadow -----------------------------------------------------------------

_FIRST_UID = 1000
_FIRST_SYSTEM_UID = 100
CORE_UID = 500  # the `core` user of CoreOS images, who gets the top-level ssh_authorized_keys


def _rows(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _join(rows: list[list[str]]) -> str:
    return "".join(":".join(row) + "\n" for row in rows)


def _next_id(used: set[int], system: bool) -> int:
    start, stop = (_FIRST_SYSTEM_UID, _FIRST_UID) if system else (_FIRST_UID, 60000)
    candidate = next((n for n in range(start, stop) if n not in used), None)
    assert candidate is not None, "no free uid/gid left"
    return candidate


def merge_users(passwd: str, group: str, shadow: str, users: Iterable[User]) -> tuple[str, str, str]:
    """New passwd, group and shadow text with ``users`` added, as useradd would.

    A user that exists keeps everything but its password hash (coreos-cloudinit does the same). Groups
    named by primary_group or groups that do not exist yet are created, because a machine root starts
    without the distribution's groups (useradd would refuse instead).
    """
    p_rows, g_rows, s_rows = _rows(passwd), _rows(group), _rows(shadow)
    for user in users:
        existing = next((row for row in p_rows if row[0] == user.name), None)
        if existing is None:
            gid = _primary_gid(user, g_rows)
            used = {int(r[2]) for r in p_rows if _num(r, 2)}
            uid = CORE_UID if user.name == "core" and CORE_UID not in used else _next_id(used, user.system)
            if gid is None:
                gid = _add_group(g_rows, user.name, uid, user.system)
            home = user.homedir or f"/home/{user.name}"
            p_rows.append(
                [user.name, "x", str(uid), str(gid), user.gecos or "", home, user.shell or "/bin/bash"]
            )
            for name in user.groups:
                _add_member(g_rows, name, user.name, user.system)
        _set_password(s_rows, user.name, user.passwd, existing is None)
    return _join(p_rows), _join(g_rows), _join(s_rows)


def _num(row: list[str], index: int) -> bool:
    return len(row) > index and row[index].isdigit()


def _primary_gid(user: User, g_rows: list[list[str]]) -> int | None:
    if user.primary_group:
        row = next((r for r in g_rows if r[0] == user.primary_group), None)
        if row is not None and _num(row, 2):
            return int(row[2])
        return _add_group(g_rows, user.primary_group, None, user.system)
    if user.no_user_group:
        return _add_group(g_rows, "users", 100, False) if not any(r[0] == "users" for r in g_rows) else 100
    return None


def _add_group(g_rows: list[list[str]], name: str, wanted: int | None, system: bool) -> int:
    used = {int(r[2]) for r in g_rows if _num(r, 2)}
    gid = wanted if wanted is not None and wanted not in used else _next_id(used, system)
    g_rows.append([name, "x", str(gid), ""])
    return gid


def _add_member(g_rows: list[list[str]], group: str, user: str, system: bool) -> None:
    row = next((r for r in g_rows if r[0] == group), None)
    if row is None:
        _add_group(g_rows, group, None, system)
        row = g_rows[-1]
    while len(row) < 4:
        row.append("")
    members = [m for m in row[3].split(",") if m]
    if user not in members:
        row[3] = ",".join([*members, user])


def _set_password(s_rows: list[list[str]], name: str, passwd: str | None, new: bool) -> None:
    row = next((r for r in s_rows if r[0] == name), None)
    if row is None:
        if new or passwd:
            # "*": no password login, as useradd --password '*' (coreos-cloudinit's default).
            s_rows.append([name, passwd or "*", "", "0", "", "", "", "", ""])
        return
    if passwd:
        while len(row) < 2:
            row.append("")
        row[1] = passwd

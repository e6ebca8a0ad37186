"""Apply a cloud-config under a machine's root directory — never the host's /etc.

Three steps, so a failure cannot leave a half-written file:

1. plan: validate (a text is parsed first; any error raises CloudConfigError before anything is touched),
   read the files that are merged (passwd, group, shadow, environment, update.conf) and list every file,
   symlink and removal, in coreos-cloudinit's order (hostname, users and keys, write_files, oem,
   update.conf, /etc/hosts, /etc/environment, units);
2. stage: write each file's full content to a temporary file beside its destination (mode and owner
   set); any error removes every temporary file and raises ApplyError — nothing was replaced;
3. commit: rename each temporary file over its destination (atomic per file), then removals.

Ownership (``write_files[].owner`` and the users' ssh files) is resolved against the machine root's own
etc/passwd and etc/group and applied only when this process runs as root; otherwise it is recorded in
``Applied.owners_not_applied`` (a machine run by an ordinary user owns all of its files).

Units are placed, not run: ``Applied`` says what the machine's boot must do next.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import render
from .errors import ApplyError
from .model import CloudConfig, DropIn, Unit, User
from .parse import parse

SSH_KEY_NAME = "coreos-cloudinit"  # the authorized_keys.d entry name update-ssh-keys gets on CoreOS


@dataclass(frozen=True)
class Applied:
    """What apply wrote, and what the boot does next, in this order (coreos-cloudinit's processUnits):

    1. reload the unit manager if ``daemon_reload`` (unit files or drop-ins were written);
    2. enable the units in ``enable`` (their [Install] sections);
    3. restart networkd if ``restart_networkd`` (a .network/.netdev/.link unit was placed);
    4. run ``commands`` — ``(unit, command)`` pairs such as ``("etcd.service", "start")`` — in order.

    ``etcd``/``etcd2``/``fleet``/``flannel``/``locksmith`` are the sections' settings (keys as written in
    the CoreOS docs, ``peer-addr``) for the code that turns them into daemon flags; the same settings are
    also in the runtime drop-ins under ``root``.
    """

    root: Path
    written: tuple[Path, ...] = ()
    removed: tuple[Path, ...] = ()
    hostname: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    commands: tuple[tuple[str, str], ...] = ()
    enable: tuple[str, ...] = ()
    daemon_reload: bool = False
    restart_networkd: bool = False
    etcd: dict[str, str] = field(default_factory=dict)
    etcd2: dict[str, str] = field(default_factory=dict)
    fleet: dict[str, str] = field(default_factory=dict)
    flannel: dict[str, str] = field(default_factory=dict)
    locksmith: dict[str, str] = field(default_factory=dict)
    owners_not_applied: tuple[tuple[Path, str], ...] = ()


@dataclass(frozen=True)
class _Op:
    """One change under the root; ``path`` is the path inside the machine (``/etc/hostname``)."""

    path: str
    kind: str  # "file", "symlink", "remove" or "dir"
    content: bytes = b""
    mode: int = 0o644
    owner: str | None = None


@dataclass
class _Plan:
    ops: list[_Op] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)
    enable: list[str] = field(default_factory=list)
    daemon_reload: bool = False
    restart_networkd: bool = False
    passwd: str = ""
    group: str = ""

    def file(self, path: str, content: str | bytes, mode: int = 0o644, owner: str | None = None) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.ops.append(_Op(path, "file", data, mode, owner))

    def writes(self, path: str) -> bool:
        return any(op.path == path and op.kind != "remove" for op in self.ops)


def apply(
    config: CloudConfig | str,
    root: Path,
    env: Mapping[str, str] | None = None,
    *,
    source: str = "<cloud-config>",
) -> Applied:
    """Write ``config`` under ``root``; ``env`` holds private_ipv4, public_ipv4, ... (substitution values).

    A text is validated and substituted with ``env`` first (CloudConfigError, nothing written); a
    CloudConfig is taken as already substituted. ApplyError if writing fails (nothing replaced).
    """
    values = dict(env or {})
    if isinstance(config, str):
        config = parse(config, source=source, substitutions=values)
    root = Path(root)
    plan = _plan(config, root, values)
    staged = _stage(plan.ops, root, plan)
    owners_not_applied = tuple(
        (_inside(root, plan.ops[i].path), owner) for i, (_, owner) in sorted(staged.items()) if owner
    )
    written, removed = _commit(plan.ops, staged, root)
    return Applied(
        root=root,
        written=written,
        removed=removed,
        hostname=config.hostname,
        environment=render.environment_vars(values),
        commands=tuple(plan.commands),
        enable=tuple(plan.enable),
        daemon_reload=plan.daemon_reload,
        restart_networkd=plan.restart_networkd,
        owners_not_applied=owners_not_applied,
        **{section: dict(getattr(config, section)) for section in render.SECTION_SERVICES},
    )


# --- plan -------------------------------------------------------------------------------------------------


def _plan(config: CloudConfig, root: Path, values: Mapping[str, str]) -> _Plan:
    plan = _Plan()
    if config.hostname:
        plan.file("/etc/hostname", config.hostname + "\n")
    _plan_users(config, root, plan)
    for wf in config.write_files:
        plan.file(_machine_path(wf.path), wf.content, wf.permissions, wf.owner)
    if config.oem.id:
        plan.file("/etc/oem-release", render.oem_release(config.oem))
    if not config.update.is_empty():
        old = _read(root, "/etc/coreos/update.conf") or _read(root, "/usr/share/coreos/update.conf")
        plan.file("/etc/coreos/update.conf", render.merge_update_conf(old, config.update))
    if config.manage_etc_hosts == "localhost":
        plan.file("/etc/hosts", f"127.0.0.1 {config.hostname or 'localhost'}\n")
    variables = render.environment_vars(values)
    # A write_files entry for /etc/environment wins over the generated one, as on CoreOS.
    if variables and not plan.writes("/etc/environment"):
        plan.file("/etc/environment", render.merge_environment(_read(root, "/etc/environment"), variables))
    for unit in _all_units(config):
        _plan_unit(unit, root, plan)
    return plan


def _plan_users(config: CloudConfig, root: Path, plan: _Plan) -> None:
    users = list(config.users)
    if config.ssh_authorized_keys and not any(u.name == "core" for u in users):
        users.append(User(name="core"))
    old = [_read(root, f"/etc/{name}") for name in ("passwd", "group", "shadow")]
    plan.passwd, plan.group, shadow = render.merge_users(*old, users)
    if not users:
        return
    plan.file("/etc/passwd", plan.passwd)
    plan.file("/etc/group", plan.group)
    plan.file("/etc/shadow", shadow, 0o640)
    homes = {row.split(":")[0]: row.split(":")[5] for row in plan.passwd.splitlines() if row.count(":") >= 6}
    for user in users:
        home = _machine_path(homes.get(user.name, f"/home/{user.name}"))
        if not user.no_create_home:
            plan.ops.append(_Op(home, "dir", mode=0o755, owner=user.name))
        keys = list(user.ssh_authorized_keys)
        if user.name == "core":
            keys += config.ssh_authorized_keys
        if keys:
            plan.ops.append(_Op(f"{home}/.ssh", "dir", mode=0o700, owner=user.name))
            text = render.authorized_keys(keys)
            plan.file(f"{home}/.ssh/authorized_keys.d/{SSH_KEY_NAME}", text, 0o600, user.name)
            # sshd reads authorized_keys; update-ssh-keys rebuilds it from every authorized_keys.d entry.
            others = _read_dir(root, f"{home}/.ssh/authorized_keys.d", skip=SSH_KEY_NAME)
            plan.file(f"{home}/.ssh/authorized_keys", others + text, 0o600, user.name)


def _all_units(config: CloudConfig) -> list[Unit]:
    """The document's units, then the sections' drop-in units, then update's (coreos-cloudinit's order)."""
    units = list(config.units)
    for section, service in render.SECTION_SERVICES.items():
        settings = getattr(config, section)
        if settings:
            content = render.drop_in_text(section, settings)
            units.append(Unit(name=service, runtime=True, drop_ins=(DropIn("20-cloudinit.conf", content),)))
    strategy = config.update.reboot_strategy
    if strategy:
        off = strategy == "off"
        units.append(
            Unit(name="locksmithd.service", runtime=True, mask=off, command="stop" if off else "restart")
        )
    if config.update.group or config.update.server:
        units.append(Unit(name="update-engine.service", command="restart"))
    return units


def _plan_unit(unit: Unit, root: Path, plan: _Plan) -> None:
    base = f"/{'run' if unit.runtime else 'etc'}/systemd/{'network' if unit.is_network else 'system'}"
    destination = f"{base}/{unit.name}"
    if unit.content:
        plan.file(destination, unit.content)
        plan.daemon_reload = True
    for drop_in in unit.drop_ins:
        if drop_in.content:
            plan.file(f"{destination}.d/{drop_in.name}", drop_in.content)
            plan.daemon_reload = True
    if unit.mask:
        plan.ops.append(_Op(destination, "symlink", b"/dev/null"))
    elif unit.runtime and not plan.writes(destination) and _null_or_empty(root, destination):
        plan.ops.append(_Op(destination, "remove"))
    if unit.enable and not unit.is_network:
        plan.enable.append(unit.name)
    if unit.is_network:
        plan.restart_networkd = True
    elif unit.command:
        plan.commands.append((unit.name, unit.command))


def _machine_path(path: str) -> str:
    """``path`` as an absolute, normalized path inside the machine: ``..`` cannot climb out of its root."""
    # One leading "/" only: POSIX lets normpath keep "//" at the start.
    return posixpath.normpath("/" + path.lstrip("/"))


def _inside(root: Path, path: str) -> Path:
    return root / _machine_path(path).lstrip("/")


def _read(root: Path, path: str) -> str:
    try:
        return _inside(root, path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as error:
        raise ApplyError(f"{_inside(root, path)}: cannot read it to merge into ({error.strerror})") from None


def _read_dir(root: Path, path: str, skip: str) -> str:
    directory = _inside(root, path)
    if not directory.is_dir():
        return ""
    return "".join(p.read_text() for p in sorted(directory.iterdir()) if p.name != skip and p.is_file())


def _null_or_empty(root: Path, path: str) -> bool:
    # Unmasking removes only what a mask left: a link to /dev/null or an empty file, never a real unit.
    target = _inside(root, path)
    if target.is_symlink():
        return os.readlink(target) == "/dev/null"
    return target.is_file() and target.stat().st_size == 0


# --- stage and commit -------------------------------------------------------------------------------------


def _stage(ops: list[_Op], root: Path, plan: _Plan) -> dict[int, tuple[Path, str | None]]:
    """Temporary files for every file/symlink op: {op index: (temp path, owner not applied)}."""
    staged: dict[int, tuple[Path, str | None]] = {}
    real_root = os.path.realpath(root)
    try:
        for index, op in enumerate(ops):
            if op.kind == "remove":
                continue
            target = _inside(root, op.path)
            if op.kind == "dir":
                _make_dirs(target, real_root, op.mode)
                _chown(target, op.owner, plan)  # a directory has no temp file; ownership only if root
                continue
            _make_dirs(target.parent, real_root, 0o755)
            if target.is_dir() and not target.is_symlink():
                raise ApplyError(f"{target}: is a directory, cannot write a file there")
            staged[index] = _write_temp(target, op, plan)
    except BaseException as error:
        for temp, _ in staged.values():
            temp.unlink(missing_ok=True)
        if isinstance(error, ApplyError):
            raise
        if isinstance(error, OSError):
            raise ApplyError(
                f"{getattr(error, 'filename', None) or root}: {error.strerror or error}; nothing was replaced"
                " (check the machine root's permissions and free space)"
            ) from error
        raise
    return staged


def _make_dirs(directory: Path, real_root: str, mode: int) -> None:
    directory.mkdir(mode=mode, parents=True, exist_ok=True)
    # A symlink inside the root must not lead a write out of it (into the host's /etc, say).
    real = os.path.realpath(directory)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise ApplyError(f"{directory}: leads outside the machine root ({real}); remove that symlink")


def _write_temp(target: Path, op: _Op, plan: _Plan) -> tuple[Path, str | None]:
    if op.kind == "symlink":
        temp = Path(tempfile.mktemp(prefix=".cloudinit-", dir=target.parent))
        os.symlink(op.content.decode(), temp)
        return temp, None
    fd, name = tempfile.mkstemp(prefix=".cloudinit-", dir=target.parent)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(op.content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, op.mode)
        return temp, _chown(temp, op.owner, plan)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _chown(path: Path, owner: str | None, plan: _Plan) -> str | None:
    """Apply ``owner`` (user[:group], names or numbers of the machine root); return it if not applied."""
    if not owner:
        return None
    user, _, group = owner.partition(":")
    uid = _lookup(plan.passwd, user)
    gid = _lookup(plan.group, group) if group else (_lookup(plan.passwd, user, column=3))
    if os.geteuid() != 0 or uid is None or gid is None:
        return owner
    os.chown(path, uid, gid)
    return None


def _lookup(table: str, name: str, column: int = 2) -> int | None:
    if name.isdigit():
        return int(name)
    for row in table.splitlines():
        fields = row.split(":")
        if fields[0] == name and len(fields) > column and fields[column].isdigit():
            return int(fields[column])
    return None


def _commit(
    ops: list[_Op], staged: dict[int, tuple[Path, str | None]], root: Path
) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    written: list[Path] = []
    removed: list[Path] = []
    try:
        for index, op in enumerate(ops):
            target = _inside(root, op.path)
            if op.kind == "remove":
                target.unlink(missing_ok=True)
                removed.append(target)
            elif index in staged:
                os.replace(staged.pop(index)[0], target)
                written.append(target)
    except OSError as error:
        for temp, _ in staged.values():
            temp.unlink(missing_ok=True)
        raise ApplyError(
            f"{error.filename or root}: {error.strerror}; already in place (whole files): "
            f"{', '.join(str(p) for p in written) or 'nothing'}"
        ) from error
    return tuple(written), tuple(removed)

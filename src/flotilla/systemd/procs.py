"""Processes of units: spawning, reaping, and knowing every process a unit left behind.

A unit's processes are tracked the way systemd tracks them, by control group, when this host gives us a
writable cgroup v2 hierarchy (``/sys/fs/cgroup`` unified, or ``/sys/fs/cgroup/unified`` in hybrid mode):
each unit gets ``<hierarchy>/flotilla/<manager-tag>/<unit>``, every process it spawns joins it before
exec, and whatever those processes fork stays in it. Without cgroups a unit's processes are found by a tag
in their environment (inherited across fork, exec and setsid) plus the sessions we created. Either way a
stop can kill everything the unit started, including daemons that double-forked.

The manager makes itself a child subreaper, so double-forked daemons are re-parented to it and their exit
statuses reach it (a forking service's main PID is usually such a grandchild). One SIGCHLD handler reaps
every child; nothing else in the manager's process may call ``waitpid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import signal
import subprocess
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ExitStatus", "ProcessTracker", "Reaper", "cgroup_hierarchy"]

_PR_SET_CHILD_SUBREAPER = 36
_TAG_VARIABLE = "FLOTILLA_UNIT_TAG"
_UNCLAIMED_LIMIT = 4096
_SCAN_REUSE_S = 0.05


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended, in systemd's terms: code "exited" with a status, or "killed"/"dumped" with a
    signal number."""

    code: str
    status: int

    @classmethod
    def from_wait_status(cls, wait_status: int) -> ExitStatus:
        if os.WIFSIGNALED(wait_status):
            sig = os.WTERMSIG(wait_status)
            return cls("dumped" if os.WCOREDUMP(wait_status) else "killed", sig)
        return cls("exited", os.WEXITSTATUS(wait_status))

    @property
    def is_signal(self) -> bool:
        return self.code != "exited"

    def describe(self) -> str:
        """``status=1/FAILURE`` / ``signal=TERM``, as systemd logs a process's end."""
        if self.is_signal:
            return f"signal={_signal_name(self.status)}"
        return f"status={self.status}/{_exit_status_name(self.status)}"

    def status_text(self) -> str:
        """The value of ``$EXIT_STATUS``: a number, or a signal name without ``SIG``."""
        return _signal_name(self.status) if self.is_signal else str(self.status)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


_EXIT_STATUS_NAMES = {
    0: "SUCCESS",
    1: "FAILURE",
    2: "INVALIDARGUMENT",
    3: "NOTIMPLEMENTED",
    4: "NOPERMISSION",
    5: "NOTINSTALLED",
    6: "NOTCONFIGURED",
    7: "NOTRUNNING",
    200: "CHDIR",
    203: "EXEC",
    216: "GROUP",
    217: "USER",
}


def _exit_status_name(status: int) -> str:
    return _EXIT_STATUS_NAMES.get(status, str(status))


class Reaper:
    """Reaps every child of this process and hands exit statuses to whoever watches that PID.

    Statuses of PIDs nobody watches yet are kept (bounded), because a forking service's daemon can exit
    between our reading its PID file and our starting to watch it.
    """

    def __init__(self) -> None:
        self._waiters: dict[int, list[asyncio.Future[ExitStatus]]] = {}
        self._unclaimed: OrderedDict[int, ExitStatus] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        loop.add_signal_handler(signal.SIGCHLD, self.reap_now)

    def uninstall(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_signal_handler(signal.SIGCHLD)

    def watch(self, pid: int) -> asyncio.Future[ExitStatus]:
        """A future resolved with the PID's exit status (at once if it already ended unwatched)."""
        assert self._loop is not None, "Reaper.install() first"
        future: asyncio.Future[ExitStatus] = self._loop.create_future()
        status = self._unclaimed.pop(pid, None)
        if status is not None:
            future.set_result(status)
        else:
            self._waiters.setdefault(pid, []).append(future)
        return future

    def reap_now(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            status = ExitStatus.from_wait_status(wait_status)
            waiters = self._waiters.pop(pid, None)
            if waiters:
                for future in waiters:
                    if not future.done():
                        future.set_result(status)
            else:
                self._unclaimed[pid] = status
                while len(self._unclaimed) > _UNCLAIMED_LIMIT:
                    self._unclaimed.popitem(last=False)

    def forget(self, pid: int) -> None:
        self._unclaimed.pop(pid, None)


def cgroup_hierarchy() -> Path | None:
    """The writable cgroup v2 hierarchy of this host, or None."""
    for candidate in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        if (candidate / "cgroup.procs").exists() and (candidate / "cgroup.subtree_control").exists():
            if os.access(candidate, os.W_OK):
                return candidate
    return None


class ProcessTracker:
    """Finds, spawns into and kills the processes of each unit of one manager."""

    def __init__(self, manager_tag: str, *, use_cgroups: bool = True) -> None:
        self._manager_tag = manager_tag
        hierarchy = cgroup_hierarchy() if use_cgroups else None
        self._base: Path | None = None
        if hierarchy is not None:
            base = hierarchy / "flotilla" / manager_tag
            try:
                base.mkdir(parents=True, exist_ok=True)
                self._base = base
            except OSError:
                self._base = None
        self._sessions: dict[str, set[int]] = {}
        self._scan_cache: tuple[float, dict[bytes, set[int]], dict[int, set[int]]] | None = None

    @property
    def uses_cgroups(self) -> bool:
        return self._base is not None

    def cgroup_path(self, unit: str) -> str:
        """The unit's control group as ``systemctl status`` shows it."""
        return f"/flotilla/{self._manager_tag}/{unit}" if self._base else f"/system.slice/{unit}"

    def _unit_cgroup(self, unit: str) -> Path | None:
        if self._base is None:
            return None
        path = self._base / unit.replace("/", "-")
        path.mkdir(exist_ok=True)
        return path

    def tag(self, unit: str) -> str:
        return f"{self._manager_tag}:{unit}"

    def spawn(
        self,
        unit: str,
        program: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        user: str | None,
        group: str | None,
        stdout: int | None,
    ) -> int:
        """Start one process of ``unit`` in a new session, joined to the unit's cgroup before exec.

        Raises OSError (ENOENT for a missing program, EACCES, ...) when exec fails."""
        env = dict(env)
        env[_TAG_VARIABLE] = self.tag(unit)
        cgroup = self._unit_cgroup(unit)
        if not os.access(program, os.X_OK):
            raise (
                PermissionError(errno.EACCES, "Permission denied")
                if os.path.exists(program)
                else (FileNotFoundError(errno.ENOENT, "No such file or directory"))
            )
        if cgroup is not None and user is None and group is None and argv and argv[0] == program:
            # Join the cgroup from a shell that then execs the program: the child needs no Python code
            # between fork and exec, so Popen can vfork (a fork of this process costs ~5 ms more).
            argv = ["/bin/sh", "-c", 'echo 0 > "$0" && exec "$@"', str(cgroup / "cgroup.procs"), *argv]
            program = "/bin/sh"
            cgroup = None
        procs_fd = os.open(cgroup / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) if cgroup else None

        def join_cgroup() -> None:  # runs in the child between fork and exec: os calls only
            if procs_fd is not None:
                os.write(procs_fd, b"0")

        try:
            process = subprocess.Popen(
                list(argv),
                executable=program,
                env=env,
                cwd=cwd,
                user=user,
                group=group,
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else subprocess.DEVNULL,
                stderr=stdout if stdout is not None else subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=join_cgroup if procs_fd is not None else None,
                close_fds=True,
            )
        finally:
            if procs_fd is not None:
                os.close(procs_fd)
        # The Reaper owns waitpid: mark the Popen finished so its finalizer never polls this PID.
        process.returncode = 0
        self._sessions.setdefault(unit, set()).add(process.pid)
        return process.pid

    def pids(self, unit: str, *, fresh: bool = True) -> set[int]:
        """Every live process of ``unit`` (zombies excluded). Without cgroups, ``fresh=False`` may answer
        from a /proc scan a few tens of milliseconds old."""
        found: set[int] = set()
        if self._base is not None:
            procs = self._base / unit.replace("/", "-") / "cgroup.procs"
            with contextlib.suppress(OSError):
                found.update(int(line) for line in procs.read_text().split())
            # A process spawned through the joining shell is outside the cgroup until that shell runs:
            # count what we spawned (while it still carries the unit's tag, so a reused PID is not ours).
            spawned = self._sessions.get(unit, set())
            for pid in list(spawned):
                if pid not in found:
                    if self._carries_tag(pid, unit):
                        found.add(pid)
                    else:
                        spawned.discard(pid)
        else:
            found.update(self._scan_without_cgroups(unit, fresh))
        return {pid for pid in found if _alive(pid)}

    def _carries_tag(self, pid: int, unit: str) -> bool:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
            # Empty while the kernel is still inside execve (seen right after Popen returns): not known yet,
            # so it stays the unit's rather than escaping a stop sent a few milliseconds after the start.
            return not environ or f"{_TAG_VARIABLE}={self.tag(unit)}".encode() in environ.split(b"\0")
        except OSError:
            return False

    def _scan_without_cgroups(self, unit: str, fresh: bool) -> set[int]:
        """The unit's processes by tag, or by session for a process that dropped its environment."""
        by_tag, by_session = self._scan_proc(fresh)
        found = set(by_tag.get(self.tag(unit).encode(), ()))
        for session in self._sessions.get(unit, ()):
            found.update(by_session.get(session, ()))
        return found

    def _scan_proc(self, fresh: bool) -> tuple[dict[bytes, set[int]], dict[int, set[int]]]:
        """One pass over /proc for every unit: tag -> PIDs and session -> PIDs. Reused for a few
        milliseconds, so 500 units stopping together cost one scan per poll round, not 500."""
        now = time.monotonic()
        if not fresh and self._scan_cache is not None and now - self._scan_cache[0] < _SCAN_REUSE_S:
            return self._scan_cache[1], self._scan_cache[2]
        prefix = f"{_TAG_VARIABLE}={self._manager_tag}:".encode()
        by_tag: dict[bytes, set[int]] = {}
        by_session: dict[int, set[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    environ = f.read()
                by_session.setdefault(os.getsid(pid), set()).add(pid)
            except OSError:
                continue
            start = environ.find(prefix)
            if start >= 0:
                end = environ.find(b"\0", start)
                tag = environ[start + len(_TAG_VARIABLE) + 1 : end if end >= 0 else len(environ)]
                by_tag.setdefault(tag, set()).add(pid)
        self._scan_cache = (now, by_tag, by_session)
        return by_tag, by_session

    def kill(self, unit: str, sig: int, *, only: Sequence[int] | None = None) -> int:
        """Send ``sig`` to the unit's processes (or to ``only`` those PIDs); returns how many got it.
        A stopped process also gets SIGCONT so it can act on the signal, as systemd does."""
        targets = set(only) if only is not None else self.pids(unit, fresh=False)
        sent = 0
        for pid in targets:
            try:
                os.kill(pid, sig)
                if sig not in (signal.SIGKILL, signal.SIGCONT):
                    os.kill(pid, signal.SIGCONT)
                sent += 1
            except ProcessLookupError:
                continue
        return sent

    async def wait_empty(
        self,
        unit: str,
        timeout_s: float | None,
        *,
        only: Callable[[], set[int]] | None = None,
    ) -> bool:
        """Wait until the unit (or the PIDs ``only`` returns) has no live process; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        delay = 0.005
        while True:
            remaining = only() if only is not None else self.pids(unit, fresh=False)
            if not remaining and (only is not None or not self.pids(unit)):  # "empty" from a fresh look
                return True
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(delay if deadline is None else min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, 0.1)

    def release(self, unit: str) -> None:
        """Forget an inactive unit: drop its session list and remove its (empty) cgroup."""
        self._sessions.pop(unit, None)
        if self._base is not None:
            with contextlib.suppress(OSError):
                (self._base / unit.replace("/", "-")).rmdir()

    def close(self) -> None:
        if self._base is not None:
            for child in list(self._base.iterdir()) if self._base.exists() else []:
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                self._base.rmdir()


def _alive(pid: int) -> bool:
    """True for a running process; False for a gone one or a zombie (already dead, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError as e:
        return e.errno not in (errno.ENOENT, errno.ESRCH)
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")

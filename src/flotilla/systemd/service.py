"""One service's life, in systemd's order: start-pre, start, start-post, running, stop, stop-sigterm,
stop-sigkill, stop-post, then dead, failed or auto-restart.

An activation is one task (``_lifecycle``) that runs from the first ExecStartPre to the final state,
restarts included; a stop request is an event the task checks at every wait, so a stop that arrives while
the service is still starting skips ExecStop (the start never succeeded) and still runs ExecStopPost, as
systemd does. ``result`` keeps the first failure of an activation (systemd's ``Result=``) and decides
between ``inactive`` and ``failed`` at the end and whether ``Restart=`` applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotilla.systemd.notify import NotifyListener
from flotilla.systemd.procs import ExitStatus, ProcessTracker, Reaper
from flotilla.systemd.protocol import UnitStatus

__all__ = ["RuntimeContext", "ServiceRuntime"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})
_EXEC_FAILED = ExitStatus("exited", 203)
_FINAL_KILL_TIMEOUT_S = 5.0


@dataclass
class RuntimeContext:
    """What every unit of one manager shares: process tracking, reaping, the journal, defaults."""

    tracker: ProcessTracker
    reaper: Reaper
    journal: Any  # flotilla.systemd.journal.Journal: append(unit, pid, identifier, message, priority=6)
    notify_dir: Path
    default_env: Mapping[str, str] = field(default_factory=dict)
    on_change: Callable[[Any], None] = lambda unit: None

    def log(self, unit: str, message: str, priority: int = 6) -> None:
        self.journal.append(unit, os.getpid(), "systemd", message, priority=priority, transport="journal")


def now_us() -> int:
    return time.time_ns() // 1000


class _Stop(Exception):
    """A stop request arrived while the activation was waiting."""


class ServiceRuntime:
    """The runtime state of one loaded ``.service`` unit. ``config`` is a ``flotilla.units.ServiceConfig``."""

    unit_type = "service"

    def __init__(self, name: str, ctx: RuntimeContext, config: Any) -> None:
        self.name = name
        self.ctx = ctx
        self.config = config
        self.active_state = "inactive"
        self.sub_state = "dead"
        self.result = "success"
        self.main_pid = 0
        self.control_pid = 0
        self.exec_main: ExitStatus | None = None
        self.exec_main_pid = 0
        self.status_text = ""
        self.n_restarts = 0
        self.timestamps = {"active_enter": 0, "active_exit": 0, "inactive_enter": 0, "inactive_exit": 0}
        self.state_change_us = 0
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self._restart_now = asyncio.Event()
        self._state_event = asyncio.Event()  # set and replaced on every state change
        self._finished_start = False  # this activation's start phase ran to its end
        self._env: dict[str, str] = {}
        self._start_times: deque[float] = deque()
        self._ready: asyncio.Future[None] | None = None
        self._main_exit: asyncio.Future[ExitStatus] | None = None
        self._notify: NotifyListener | None = None

    # ----------------------------------------------------------------- the manager's entry points

    async def start(self) -> str:
        """Start (or join the running start of) this service; returns the job result."""
        if self.active_state in ("active", "reloading"):
            return "done"
        if self._task is not None and not self._task.done():
            if self.active_state == "deactivating":
                await self.wait_inactive()  # systemd queues a start behind a running stop
                return await self.start()
            self._restart_now.set()  # a start during auto-restart skips the rest of RestartSec
            while self.sub_state == "auto-restart" and not self._task.done():
                await self._state_event.wait()
        else:
            if not self._start_limit_allows():
                self.result = "start-limit-hit"
                self.ctx.log(self.name, f"{self.name}: Start request repeated too quickly.", 3)
                self.ctx.log(self.name, f"Failed to start {self._description()}.", 3)
                self._set_state("failed", "failed")
                return "failed"
            self.result = "success"
            self._finished_start = False
            self._stop_requested = asyncio.Event()
            self._restart_now = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._lifecycle(), name=f"unit:{self.name}")
        return await self._wait_start_job()

    async def stop(self) -> str:
        if self._task is None or self._task.done():
            return "done"
        self._stop_requested.set()
        await asyncio.shield(self._task)
        return "done"

    async def wait_inactive(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)

    def kill(self, sig: int) -> int:
        return self.ctx.tracker.kill(self.name, sig)

    def reset_failed(self) -> None:
        if self.active_state == "failed":
            self.result = "success"
            self._set_state("inactive", "dead")
        self._start_times.clear()

    async def shutdown(self) -> None:
        await self.stop()

    def status(self) -> UnitStatus:
        exec_main = self.exec_main
        return UnitStatus(
            name=self.name,
            load_state="loaded",
            active_state=self.active_state,
            sub_state=self.sub_state,
            description=self._description(),
            result=self.result,
            main_pid=self.main_pid,
            control_pid=self.control_pid,
            exec_main_code=exec_main.code if exec_main else "",
            exec_main_status=exec_main.status if exec_main else 0,
            exec_main_pid=self.exec_main_pid,
            status_text=self.status_text,
            n_restarts=self.n_restarts,
            active_enter_us=self.timestamps["active_enter"],
            active_exit_us=self.timestamps["active_exit"],
            inactive_enter_us=self.timestamps["inactive_enter"],
            inactive_exit_us=self.timestamps["inactive_exit"],
            state_change_us=self.state_change_us,
            cgroup=self.ctx.tracker.cgroup_path(self.name),
            tasks=tuple(sorted(self.ctx.tracker.pids(self.name))) if self.active_state != "inactive" else (),
            unit_type="service",
        )

    # ----------------------------------------------------------------- state

    def _description(self) -> str:
        return self.config.description or self.name

    def _set_state(self, active: str, sub: str) -> None:
        was_active = self.active_state
        stamp = now_us()
        if active != was_active:
            if active == "active":
                self.timestamps["active_enter"] = stamp
            if was_active == "active":
                self.timestamps["active_exit"] = stamp
            if active in ("inactive", "failed"):
                self.timestamps["inactive_enter"] = stamp
            if was_active in ("inactive", "failed"):
                self.timestamps["inactive_exit"] = stamp
        self.active_state, self.sub_state = active, sub
        self.state_change_us = stamp
        self.ctx.on_change(self)
        event, self._state_event = self._state_event, asyncio.Event()
        event.set()

    async def _wait_start_job(self) -> str:
        """Wait until the start job settles: the unit is active (done), or the activation ended or went
        to auto-restart (failed, unless a oneshot ran to completion)."""
        while True:
            if self.active_state in ("active", "reloading"):
                return "done"
            if self._task is None or self._task.done() or self.sub_state == "auto-restart":
                break
            await self._state_event.wait()
        if self._stop_requested.is_set() and not self._finished_start:
            return "canceled"  # a stop job replaced this start job ("Job for x.service canceled.")
        if self.result == "success" and self.sub_state != "auto-restart":
            return "done"  # a oneshot that ran to completion
        # A start that timed out fails the job too: the job result "timeout" is JobTimeoutSec's, not ours.
        return "failed"

    def _start_limit_allows(self) -> bool:
        interval, burst = self.config.start_limit_interval_s, self.config.start_limit_burst
        if not interval or not burst:
            return True
        clock = time.monotonic()
        while self._start_times and clock - self._start_times[0] > interval:
            self._start_times.popleft()
        if len(self._start_times) >= burst:
            return False
        self._start_times.append(clock)
        return True

    def _fail(self, result: str) -> None:
        if self.result == "success":
            self.result = result

    # ----------------------------------------------------------------- the activation

    async def _lifecycle(self) -> None:
        try:
            while True:
                started = False
                try:
                    started = await self._start_phase()
                    self._finished_start = started
                    if started:
                        await self._running_phase()
                except _Stop:
                    pass
                except Exception as error:  # noqa: BLE001 - a unit must never end "dead, success" silently
                    self.ctx.log(self.name, f"{self.name}: Failed to run: {error!r}", 3)
                    self._fail("resources")
                await self._stop_phase(started)
                if self._stop_requested.is_set() or not self._should_restart():
                    break
                if not await self._auto_restart_wait():
                    break
        finally:
            self._close_notify()
            if self._main_exit is not None and not self._main_exit.done():
                self._main_exit.cancel()  # a control-group watcher (forking without a main PID)
            self._main_exit = None
            self.main_pid = self.control_pid = 0
            final = ("failed", "failed") if self.result != "success" else ("inactive", "dead")
            if self.result != "success":
                self.ctx.log(self.name, f"{self.name}: Failed with result '{self.result}'.", 4)
            self._set_state(*final)
            self.ctx.tracker.release(self.name)

    async def _auto_restart_wait(self) -> bool:
        """RestartSec in state auto-restart; False when a stop request ends the wait (or the limit hits)."""
        self._set_state("activating", "auto-restart")
        self.ctx.log(
            self.name,
            f"{self.name}: Service RestartSec={_format_span(self.config.restart_sec_s)} "
            "expired, scheduling restart.",
        )
        waiters = [
            asyncio.ensure_future(self._stop_requested.wait()),
            asyncio.ensure_future(self._restart_now.wait()),
        ]
        try:
            await asyncio.wait(
                waiters, timeout=self.config.restart_sec_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._restart_now.clear()
        if self._stop_requested.is_set():
            return False
        self.n_restarts += 1
        self.ctx.log(
            self.name, f"{self.name}: Scheduled restart job, restart counter is at {self.n_restarts}."
        )
        if not self._start_limit_allows():
            self.result = "start-limit-hit"
            self.ctx.log(self.name, f"{self.name}: Start request repeated too quickly.", 3)
            return False
        self.result = "success"
        return True

    async def _start_phase(self) -> bool:
        """Returns True once the service counts as started (ExecStop will run when it stops)."""
        config = self.config
        self.status_text = ""
        self.exec_main = None
        self.ctx.log(self.name, f"Starting {self._description()}...")
        env = self._environment()
        self._env = env or {}
        if env is None:
            self._fail("resources")
            self.ctx.log(self.name, f"Failed to start {self._description()}.", 3)
            return False
        timeout = config.timeout_start_s
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        self._set_state("activating", "start-pre")
        for command in config.exec_start_pre:
            if not await self._run_control(command, env, deadline, "start-pre"):
                self.ctx.log(self.name, f"Failed to start {self._description()}.", 3)
                return False
            await self._kill_leftovers()  # what an ExecStartPre forked dies before the next command
        self._set_state("activating", "start")
        if config.type == "oneshot":
            for command in config.exec_start:
                if not await self._run_control(command, env, deadline, "start", main=True):
                    self.ctx.log(self.name, f"Failed to start {self._description()}.", 3)
                    return False
        elif not await self._start_main(env, deadline):
            self.ctx.log(self.name, f"Failed to start {self._description()}.", 3)
            return False
        if config.exec_start_post:
            self._set_state("activating", "start-post")
            for command in config.exec_start_post:
                if not await self._run_control(command, self._with_mainpid(env), deadline, "start-post"):
                    # The start failed: ExecStop is skipped, the main process is killed (stop-sigterm).
                    self.ctx.log(self.name, f"Failed to start {self._description()}.", 3)
                    return False
        if config.type == "oneshot" and not config.remain_after_exit:
            self.ctx.log(self.name, f"Finished {self._description()}.")
            return True
        sub = "exited" if (config.type == "oneshot" or self._main_exit is None) else "running"
        self._set_state("active", sub)
        self.ctx.log(self.name, f"Started {self._description()}.")
        return True

    async def _start_main(self, env: dict[str, str], deadline: float | None) -> bool:
        config = self.config
        if not config.exec_start:
            return True  # e.g. Type=simple with only ExecStop (systemd then behaves like RemainAfterExit)
        if config.type == "notify":
            self._open_notify()
            env = {**env, "NOTIFY_SOCKET": str(self._notify_path())}
            self._ready = asyncio.get_running_loop().create_future()
        pid = self._spawn(config.exec_start[0], env)
        if pid is None:
            self._fail("exit-code")
            self.exec_main = _EXEC_FAILED
            return False
        self._set_main(pid)
        if config.type == "forking":
            return await self._wait_forked(deadline)
        if config.type == "notify":
            return await self._wait_ready(deadline)
        return True

    def _set_main(self, pid: int) -> None:
        self.main_pid = self.exec_main_pid = pid
        self._main_exit = self.ctx.reaper.watch(pid)

    async def _wait_forked(self, deadline: float | None) -> bool:
        """Type=forking: the start is done when the first process exits; its child is the main process."""
        assert self._main_exit is not None
        status = await self._wait(self._main_exit, deadline)
        if status is None:
            return await self._start_timed_out()
        parent = self.main_pid
        self.main_pid = 0
        if not self._is_clean(status) and not self._main_forgiven():
            self._main_exited(status, parent)
            return False
        pid = self._read_pid_file() if self.config.pid_file else self._guess_main_pid()
        if pid:
            self._set_main(pid)
        else:
            # No main PID known: the service runs as long as its control group has processes.
            self._main_exit = asyncio.ensure_future(self._until_empty())
        return True

    async def _until_empty(self) -> ExitStatus:
        await self.ctx.tracker.wait_empty(self.name, None)
        return ExitStatus("exited", 0)

    def _main_forgiven(self) -> bool:
        """ExecStart=-...: a failure of the main process counts as success (systemd.service(5))."""
        return bool(self.config.exec_start) and self.config.exec_start[0].ignore_failure

    async def _wait_ready(self, deadline: float | None) -> bool:
        assert self._ready is not None and self._main_exit is not None
        loop = asyncio.get_running_loop()
        while True:
            main_exit = self._main_exit
            assert main_exit is not None
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            stop = asyncio.ensure_future(self._stop_requested.wait())
            try:
                done, _ = await asyncio.wait(
                    {self._ready, main_exit, stop}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stop.cancel()
            if stop in done:
                raise _Stop
            if self._ready.done():
                return True
            if not main_exit.done():
                return await self._start_timed_out()
            if main_exit is not self._main_exit:
                continue  # MAINPID= handed the service to another process: wait for that one
            self._main_exited(main_exit.result(), self.main_pid)
            if self.result == "success":
                self._fail("protocol")  # exited cleanly without ever saying READY=1
            return False

    async def _start_timed_out(self) -> bool:
        self.ctx.log(self.name, f"{self.name}: Start operation timed out. Terminating.", 3)
        self._fail("timeout")
        return False

    async def _running_phase(self) -> None:
        """Wait for the main process to exit or for a stop request."""
        if self._main_exit is None:
            if self.config.type == "oneshot" and not self.config.remain_after_exit:
                return
            await self._stop_requested.wait()  # active (exited): nothing runs, the unit stays up
            return
        while True:
            main_exit = self._main_exit
            status = await self._wait(main_exit, None)
            if main_exit is self._main_exit:
                break  # else MAINPID= moved the service to another process while we waited
        assert status is not None
        pid = self.main_pid
        self.main_pid = 0
        self._main_exited(status, pid)
        if self.result == "success" and self.config.remain_after_exit:
            self._set_state("active", "exited")
            await self._stop_requested.wait()

    def _main_exited(self, status: ExitStatus, pid: int) -> None:
        self.exec_main = status
        self._main_exit = None
        clean = self._is_clean(status)
        if pid:
            self.ctx.log(
                self.name,
                f"{self.name}: Main process exited, code={status.code}, {status.describe()}",
                6 if clean else 4,
            )
        if not clean and not self._main_forgiven():
            self._fail({"exited": "exit-code", "killed": "signal", "dumped": "core-dump"}[status.code])

    async def _stop_phase(self, started: bool) -> None:
        config = self.config
        env = self._env or {"PATH": DEFAULT_PATH, **self.ctx.default_env}
        stopping = self._stop_requested.is_set()
        if stopping and self.active_state in ("active", "activating"):
            self.ctx.log(self.name, f"Stopping {self._description()}...")
        timeout = config.timeout_stop_s
        if started and config.exec_stop:
            self._set_state("deactivating", "stop")
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            for command in config.exec_stop:
                if not await self._run_control(
                    command, self._with_mainpid(env), deadline, "stop", stoppable=False
                ):
                    break
        await self._kill_main_and_rest(timeout)
        if config.exec_stop_post:
            self._set_state("deactivating", "stop-post")
            post_env = self._with_result(env)
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            for command in config.exec_stop_post:
                await self._run_control(command, post_env, deadline, "stop-post", stoppable=False)
        if config.kill_mode in ("control-group", "mixed"):
            # mixed: the main process got KillSignal, the rest of the group gets SIGKILL (systemd.kill)
            await self._final_kill(
                config.kill_signal if config.kill_mode == "control-group" else signal.SIGKILL
            )
        if stopping and self.result == "success":
            self.ctx.log(self.name, f"Stopped {self._description()}.")

    async def _kill_main_and_rest(self, timeout: float | None) -> None:
        """stop-sigterm then stop-sigkill, per KillMode; the main process's end is recorded."""
        config, tracker = self.config, self.ctx.tracker
        main = self.main_pid
        mode = config.kill_mode
        if mode == "none":  # systemd.kill(5): no process is killed; what runs is left running
            self._collect_main_exit()
            return
        everything = mode == "control-group"

        def targets() -> set[int]:
            pids = tracker.pids(self.name, fresh=False)
            return pids if everything else {main} & pids

        if not targets() and not (main and self._main_exit and not self._main_exit.done()):
            self._collect_main_exit()
            return
        self._set_state("deactivating", "stop-sigterm")
        if mode != "none":
            tracker.kill(self.name, config.kill_signal, only=None if everything else ([main] if main else []))
        if not await self._wait_gone(None if everything else targets, timeout):
            self.ctx.log(self.name, f"{self.name}: State 'stop-sigterm' timed out. Killing.", 4)
            self._fail("timeout")
            if config.send_sigkill:
                self._set_state("deactivating", "stop-sigkill")
                kill_all = mode in ("control-group", "mixed")
                tracker.kill(self.name, signal.SIGKILL, only=None if kill_all else ([main] if main else []))
                await self._wait_gone(None if everything else targets, _FINAL_KILL_TIMEOUT_S)
        self._collect_main_exit()

    async def _wait_gone(self, targets: Callable[[], set[int]] | None, timeout: float | None) -> bool:
        """Wait for the main process's exit, then for ``targets`` (None: the whole unit) to be gone."""
        if self._main_exit is not None and not self._main_exit.done():
            loop = asyncio.get_running_loop()
            start = loop.time()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._main_exit), timeout)
            if not self._main_exit.done():
                return False
            timeout = None if timeout is None else max(0.0, timeout - (loop.time() - start))
        return await self.ctx.tracker.wait_empty(self.name, timeout, only=targets)

    def _collect_main_exit(self) -> None:
        if self._main_exit is not None and self._main_exit.done():
            pid = self.main_pid
            self.main_pid = 0
            self._main_exited(self._main_exit.result(), pid)
        self.main_pid = 0

    async def _final_kill(self, first_signal: int) -> None:
        tracker = self.ctx.tracker
        if not tracker.pids(self.name):
            return
        self._set_state("deactivating", "final-sigterm")
        tracker.kill(self.name, first_signal)
        if not await tracker.wait_empty(self.name, self.config.timeout_stop_s):
            self._set_state("deactivating", "final-sigkill")
            tracker.kill(self.name, signal.SIGKILL)
            await tracker.wait_empty(self.name, _FINAL_KILL_TIMEOUT_S)

    async def _kill_leftovers(self) -> None:
        tracker = self.ctx.tracker
        if tracker.pids(self.name):
            tracker.kill(self.name, signal.SIGKILL)
            await tracker.wait_empty(self.name, _FINAL_KILL_TIMEOUT_S)

    def _should_restart(self) -> bool:
        config = self.config
        status = self.exec_main
        if status is not None:
            if _matches(status, config.restart_prevent_exit_status):
                return False
            if _matches(status, config.restart_force_exit_status):
                return True
        policy = config.restart
        result = self.result
        if result == "start-limit-hit" or policy == "no":
            return False
        if policy == "always":
            return True
        if result == "success":
            return policy == "on-success"
        if policy == "on-failure":
            return True
        if policy == "on-abnormal":
            return result in ("signal", "core-dump", "timeout", "watchdog")
        if policy == "on-abort":
            return result in ("signal", "core-dump")
        if policy == "on-watchdog":
            return result == "watchdog"
        return False

    # ----------------------------------------------------------------- processes

    async def _run_control(
        self,
        command: Any,
        env: dict[str, str],
        deadline: float | None,
        phase: str,
        *,
        main: bool = False,
        stoppable: bool = True,
    ) -> bool:
        """Run one Exec command to completion; False when it failed (and its '-' prefix does not forgive)."""
        pid = self._spawn(command, env)
        if pid is None:
            status = _EXEC_FAILED
        else:
            if main:
                self.main_pid = self.exec_main_pid = pid
            else:
                self.control_pid = pid
            exit_future = self.ctx.reaper.watch(pid)
            try:
                status = await self._wait(exit_future, deadline, stoppable=stoppable)
            except _Stop:
                self._kill_control(pid)
                await exit_future
                raise
            finally:
                self.control_pid = 0
                if main:
                    self.main_pid = 0
            if status is None:
                self.ctx.log(self.name, f"{self.name}: Control process timed out. Terminating.", 3)
                self._kill_control(pid)
                status = await exit_future
                self._fail("timeout")
                return False  # '-' forgives exit codes and signals, never a timeout
        if main:
            self.exec_main = status
        if self._is_clean(status, strict=True) or command.ignore_failure:
            return True
        kind = "Main" if main else "Control"
        self.ctx.log(
            self.name, f"{self.name}: {kind} process exited, code={status.code}, {status.describe()}", 4
        )
        self._fail({"exited": "exit-code", "killed": "signal", "dumped": "core-dump"}[status.code])
        return False

    def _kill_control(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _spawn(self, command: Any, env: dict[str, str]) -> int | None:
        config = self.config
        program, argv = command.expand(env)
        resolved = (
            program if os.path.isabs(program) else shutil.which(program, path=env.get("PATH", DEFAULT_PATH))
        )
        output = None
        read_fd = write_fd = -1
        if config.standard_output != "null":
            read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
            output = write_fd
        try:
            if resolved is None:
                raise FileNotFoundError(2, "No such file or directory")
            pid = self.ctx.tracker.spawn(
                self.name,
                resolved,
                argv,
                env=env,
                cwd=self._working_directory(env),
                user=config.user,
                group=config.group,
                stdout=output,
            )
        except (OSError, ValueError, KeyError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            self.ctx.log(self.name, f"{self.name}: Failed to execute {program}: {reason}", 3)
            if read_fd >= 0:
                os.close(read_fd)
                os.close(write_fd)
            return None
        if output is not None:
            os.close(write_fd)
            identifier = config.syslog_identifier or os.path.basename(argv[0] if argv else program)
            _OutputReader(self.ctx.journal, self.name, pid, identifier, read_fd).start()
        return pid

    def _working_directory(self, env: Mapping[str, str]) -> str | None:
        directory = self.config.working_directory
        if not directory:
            return None
        if directory == "~":
            return env.get("HOME", "/")
        return directory

    def _is_clean(self, status: ExitStatus, *, strict: bool = False) -> bool:
        """A clean end: exit 0 or SuccessExitStatus=; SIGHUP/INT/TERM/PIPE too, except for control commands
        and oneshot services (``strict``), as systemd.service(5) says of SuccessExitStatus=."""
        config = self.config
        if status.is_signal:
            return (not strict and status.status in _CLEAN_SIGNALS) or status.status in config.success_signals
        return status.status == 0 or status.status in config.success_exit_status

    def _read_pid_file(self) -> int:
        try:
            return int(Path(self.config.pid_file).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            self.ctx.log(self.name, f"{self.name}: Can't open PID file {self.config.pid_file}", 4)
            return self._guess_main_pid()

    def _guess_main_pid(self) -> int:
        pids = self.ctx.tracker.pids(self.name)
        return min(pids) if len(pids) == 1 else 0

    async def _wait(
        self,
        future: asyncio.Future[ExitStatus],
        deadline: float | None,
        *,
        stoppable: bool = True,
    ) -> ExitStatus | None:
        """The future's result; None at the deadline; raises _Stop on a stop request (when stoppable)."""
        loop = asyncio.get_running_loop()
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        waiters: set[asyncio.Future[Any]] = {future}
        stop = asyncio.ensure_future(self._stop_requested.wait()) if stoppable else None
        if stop is not None:
            waiters.add(stop)
        try:
            await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if stop is not None:
                stop.cancel()
        if future.done():
            return future.result()
        if stop is not None and self._stop_requested.is_set():
            raise _Stop
        return None

    # ----------------------------------------------------------------- environment and notify

    def _environment(self) -> dict[str, str] | None:
        """The environment of this activation's processes; None when a required EnvironmentFile is missing."""
        from flotilla.units import parse_environment_file

        config = self.config
        env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}
        env.update(self.ctx.default_env)
        env["INVOCATION_ID"] = uuid.uuid4().hex
        if config.user:
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(config.user)
                env.update(USER=entry.pw_name, LOGNAME=entry.pw_name, HOME=entry.pw_dir, SHELL=entry.pw_shell)
        env.update(dict(config.environment))
        for path, ignore_missing in config.environment_files:
            try:
                text = Path(path).read_text()
            except OSError:
                if ignore_missing:
                    continue
                self.ctx.log(
                    self.name,
                    f"{self.name}: Failed to load environment files: No such file or directory ({path})",
                    3,
                )
                return None
            env.update(dict(parse_environment_file(text, path)))
        return env

    def _with_mainpid(self, env: dict[str, str]) -> dict[str, str]:
        return {**env, "MAINPID": str(self.main_pid)} if self.main_pid else env

    def _with_result(self, env: dict[str, str]) -> dict[str, str]:
        env = {**env, "SERVICE_RESULT": self.result}
        if self.exec_main is not None:
            env["EXIT_CODE"] = self.exec_main.code
            env["EXIT_STATUS"] = self.exec_main.status_text()
        return env

    def _notify_path(self) -> Path:
        """A short path: a unix socket address holds at most 107 bytes, whatever the unit's name."""
        name = hashlib.sha1(self.ctx.tracker.tag(self.name).encode()).hexdigest()[:16] + ".sock"
        path = self.ctx.notify_dir / name
        return path if len(str(path)) <= 100 else Path(tempfile.gettempdir()) / f"flotilla-notify-{name}"

    def _open_notify(self) -> None:
        if self._notify is None:
            self._notify = NotifyListener(self._notify_path(), self._on_notify)
            self._notify.open()

    def _close_notify(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    def _on_notify(self, pid: int | None, fields: dict[str, str]) -> None:
        access = self.config.notify_access
        if access == "none":
            return
        if pid is not None and access == "main" and pid != self.main_pid:
            return
        if pid is not None and access == "all" and pid not in self.ctx.tracker.pids(self.name):
            return
        if "STATUS" in fields:
            self.status_text = fields["STATUS"]
            self.ctx.on_change(self)
        if "MAINPID" in fields and fields["MAINPID"].isdigit():
            self.main_pid = int(fields["MAINPID"])
            self._main_exit = self.ctx.reaper.watch(self.main_pid)
        if fields.get("READY") == "1" and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)


def _matches(status: ExitStatus, spec: Any) -> bool:
    """Whether an exit status is listed in an ExitStatusSet (``RestartPreventExitStatus=1 SIGABRT``)."""
    return status.status in (spec.signals if status.is_signal else spec.codes)


def _format_span(seconds: float) -> str:
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


class _OutputReader:
    """Copies one process's stdout/stderr pipe into the journal, a line per entry, until EOF."""

    def __init__(self, journal: Any, unit: str, pid: int, identifier: str, fd: int) -> None:
        from flotilla.systemd.journal import LineSplitter

        self._journal, self._unit, self._pid, self._identifier, self._fd = journal, unit, pid, identifier, fd
        self._splitter = LineSplitter()
        self._loop = asyncio.get_running_loop()

    def start(self) -> None:
        os.set_blocking(self._fd, False)
        self._loop.add_reader(self._fd, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        lines = self._splitter.feed(data) if data else self._splitter.flush()
        try:
            for line in lines:
                self._journal.append(self._unit, self._pid, self._identifier, line)
        except RuntimeError:  # the manager closed its journal: a KillMode=none leftover still writes
            data = b""
        if not data:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)

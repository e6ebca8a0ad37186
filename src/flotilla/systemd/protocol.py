"""The local unit manager as fleet's agent and the CLIs see it: one Protocol, two planned backends.

The embedded supervisor (``flotilla.systemd.manager.Manager``, reached over its socket through
``flotilla.systemd.client.ManagerClient``) implements it today; a real-systemd backend over D-Bus can
implement the same methods later. Jobs block until they finish, like ``systemctl start`` without
``--no-block``; the result is a ``JobResult`` rather than an exception, because a failed start is an
ordinary outcome a caller reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

__all__ = ["JobResult", "UnitManager", "UnitStatus", "job_failure_message", "job_refusal"]


@dataclass(frozen=True)
class UnitStatus:
    """A unit's state with systemd's names and values (LOAD/ACTIVE/SUB as ``systemctl list-units``)."""

    name: str
    load_state: str  # loaded | not-found | bad-setting | error | masked
    active_state: str  # active | reloading | inactive | failed | activating | deactivating
    sub_state: str  # dead | start-pre | start | start-post | running | exited | stop | ... | failed
    description: str = ""
    fragment_path: str = ""
    dropin_paths: tuple[str, ...] = ()
    unit_file_state: str = ""  # enabled | disabled | static | linked-runtime | masked
    load_error: str = ""
    result: str = "success"  # success | exit-code | signal | core-dump | timeout | start-limit-hit | ...
    main_pid: int = 0
    control_pid: int = 0
    exec_main_code: str = ""  # exited | killed | dumped
    exec_main_status: int = 0
    exec_main_pid: int = 0
    status_text: str = ""  # STATUS= from sd_notify
    n_restarts: int = 0
    active_enter_us: int = 0
    active_exit_us: int = 0
    inactive_enter_us: int = 0
    inactive_exit_us: int = 0
    state_change_us: int = 0
    cgroup: str = ""
    tasks: tuple[int, ...] = ()
    unit_type: str = "service"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnitStatus:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("dropin_paths", "tasks"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


@dataclass(frozen=True)
class JobResult:
    """How a start/stop/restart job ended: ``done``, ``failed``, ``timeout``, ``dependency``,
    ``canceled``, ``invalid`` (e.g. the unit cannot be loaded) — systemd's job results."""

    unit: str
    job_type: str
    result: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.result == "done"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobResult:
        return cls(**{k: data[k] for k in ("unit", "job_type", "result", "message") if k in data})


# Why a service's start failed, as systemctl words it after "Job for x.service failed because ...".
_FAILURE_CAUSES = {
    "exit-code": "the control process exited with error code",
    "signal": "a fatal signal was delivered to the control process",
    "core-dump": "a fatal signal was delivered causing the control process to dump core",
    "timeout": "a timeout was exceeded",
    "start-limit-hit": "start of the service was attempted too often",
    "resources": "of unavailable resources or another system error",
    "protocol": "the service did not take the steps required by its unit configuration",
}


def job_refusal(name: str, job: str, load_state: str, load_error: str) -> JobResult | None:
    """The ``invalid`` result for a job on a unit that is not loaded; None when it is."""
    if load_state == "not-found":
        return JobResult(name, job, "invalid", f"Unit {name} not found.")
    if load_state == "masked":
        return JobResult(name, job, "invalid", f"Unit {name} is masked.")
    if load_state != "loaded":
        return JobResult(name, job, "invalid", f"Unit {name} has a bad unit file setting: {load_error}")
    return None


def job_failure_message(name: str, result: str, unit_result: str) -> str:
    """systemctl's message for a job that ended ``result`` on a unit whose ``Result=`` is ``unit_result``."""
    if result == "done":
        return ""
    if result == "dependency":
        return f"A dependency job for {name} failed. See 'journalctl -xe' for details."
    if result == "canceled":
        return f"Job for {name} canceled."
    cause = _FAILURE_CAUSES.get(unit_result, "the service failed")
    return (
        f'Job for {name} failed because {cause}.\nSee "systemctl status {name}" and "journalctl -xe" '
        "for details."
    )


class UnitManager(Protocol):
    """What fleet's agent and the CLIs need from "the local systemd"."""

    async def start_unit(self, name: str) -> JobResult: ...

    async def stop_unit(self, name: str) -> JobResult: ...

    async def restart_unit(self, name: str) -> JobResult: ...

    async def kill_unit(self, name: str, signal_number: int) -> None: ...

    async def reset_failed(self, name: str | None = None) -> None: ...

    async def unit_status(self, name: str) -> UnitStatus:
        """The unit's status; a unit without a file answers load_state ``not-found``."""
        ...

    async def list_units(self, *, include_inactive: bool = False) -> list[UnitStatus]: ...

    async def unit_file_text(self, name: str) -> str:
        """What ``systemctl cat`` prints: the fragment and drop-ins, each after a ``# path`` line."""
        ...

    async def link_unit_file(self, path: str, *, runtime: bool = True) -> None:
        """Make a unit file outside the search path loadable (fleet's LinkUnitFiles, runtime=true)."""
        ...

    async def unlink_unit_file(self, name: str) -> None: ...

    async def enable_unit(self, name: str, *, runtime: bool = False) -> list[str]: ...

    async def disable_unit(self, name: str) -> list[str]: ...

    async def daemon_reload(self) -> None: ...

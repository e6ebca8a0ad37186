"""The typed view of a unit that the supervisor runs: ``[Unit]``, ``[Service]`` and ``[Install]``.

``service_config`` applies the options in file order (drop-ins last), as systemd's loader does: a
single-valued setting takes its last value, an empty assignment resets a list (Exec*, Environment*,
SuccessExitStatus, ...), dependencies only accumulate (systemd cannot reset them either). Specifiers
expand where systemd expands them: descriptions, dependency names, Exec arguments (never the program),
Environment, EnvironmentFile, WorkingDirectory, User/Group, PIDFile, SyslogIdentifier.

A value systemd would refuse (an unknown enum value, a malformed time, boolean or signal) is a
``UnitFileError`` with file:line naming the option and what is allowed: Flotilla refuses the unit instead of
running it half-configured. Unknown options and sections are ignored with a warning, as systemd does, and
collected in ``warnings``. Any unit loads (``.target`` and friends get descriptions and dependencies); the
[Service] checks (``Service has no ExecStart= ...``) apply to ``.service`` names only.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from .environment import parse_environment_value_with_warnings
from .errors import UnitFileError, UnitNameError
from .execline import ExecCommand, parse_exec_value
from .names import parse_unit_name
from .specifiers import SpecifierContext, expand_specifiers
from .timespan import parse_timespan
from .unitfile import Option, UnitFile

SERVICE_TYPES = ("simple", "exec", "idle", "forking", "oneshot", "notify")
RESTART_VALUES = ("no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always")
KILL_MODES = ("control-group", "mixed", "process", "none")
NOTIFY_ACCESS_VALUES = ("none", "main", "exec", "all")
OUTPUT_VALUES = (
    "inherit",
    "null",
    "tty",
    "journal",
    "syslog",
    "kmsg",
    "journal+console",
    "syslog+console",
    "kmsg+console",
    "socket",
)
OUTPUT_PREFIXES = ("file:", "append:", "truncate:", "fd:")
DEFAULT_TIMEOUT_S = 90.0

_TRUE = frozenset({"1", "yes", "y", "true", "t", "on"})
_FALSE = frozenset({"0", "no", "n", "false", "f", "off"})
_DEPENDENCIES = {
    "Requires": "requires",
    "Wants": "wants",
    "BindsTo": "binds_to",
    "After": "after",
    "Before": "before",
    "Conflicts": "conflicts",
    "Requisite": "requisite",
    "PartOf": "part_of",
}
_EXEC = {
    "ExecStartPre": "exec_start_pre",
    "ExecStart": "exec_start",
    "ExecStartPost": "exec_start_post",
    "ExecStop": "exec_stop",
    "ExecStopPost": "exec_stop_post",
    "ExecReload": "exec_reload",
}
# Accepted without a warning: they only document or only matter to a real systemd's boot ordering.
_QUIET = {"Unit": {"Documentation", "DefaultDependencies"}, "Install": {"Alias", "Also", "DefaultInstance"}}


@dataclass(frozen=True)
class ExitStatusSet:
    """Exit codes (0-255) and signal numbers, as in ``RestartPreventExitStatus=1 6 SIGABRT``."""

    codes: frozenset[int] = frozenset()
    signals: frozenset[int] = frozenset()

    def __contains__(self, item: object) -> bool:
        return item in self.codes


@dataclass(frozen=True)
class ServiceConfig:
    """What the supervisor needs to run one unit. Times are seconds; None means infinity."""

    name: str
    description: str = ""
    type: str = "simple"
    remain_after_exit: bool = False
    exec_start_pre: tuple[ExecCommand, ...] = ()
    exec_start: tuple[ExecCommand, ...] = ()
    exec_start_post: tuple[ExecCommand, ...] = ()
    exec_stop: tuple[ExecCommand, ...] = ()
    exec_stop_post: tuple[ExecCommand, ...] = ()
    exec_reload: tuple[ExecCommand, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    environment_files: tuple[tuple[str, bool], ...] = ()
    working_directory: str | None = None
    working_directory_missing_ok: bool = False
    user: str | None = None
    group: str | None = None
    pid_file: str | None = None
    restart: str = "no"
    restart_sec_s: float = 0.1
    timeout_start_s: float | None = DEFAULT_TIMEOUT_S
    timeout_stop_s: float | None = DEFAULT_TIMEOUT_S
    kill_mode: str = "control-group"
    kill_signal: int = int(signal.SIGTERM)
    send_sigkill: bool = True
    success_exit_status: frozenset[int] = frozenset()
    success_signals: frozenset[int] = frozenset()
    restart_prevent_exit_status: ExitStatusSet = ExitStatusSet()
    restart_force_exit_status: ExitStatusSet = ExitStatusSet()
    start_limit_interval_s: float = 10.0
    start_limit_burst: int = 5
    requires: tuple[str, ...] = ()
    wants: tuple[str, ...] = ()
    binds_to: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    before: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    requisite: tuple[str, ...] = ()
    part_of: tuple[str, ...] = ()
    wanted_by: tuple[str, ...] = ()
    required_by: tuple[str, ...] = ()
    standard_output: str = "journal"
    standard_error: str = "inherit"
    syslog_identifier: str | None = None
    notify_access: str = "none"
    warnings: tuple[str, ...] = ()
    unit_type: str = field(default="service")

    @property
    def is_service(self) -> bool:
        return self.unit_type == "service"


class _Loader:
    """Applies options one by one to a dict of ServiceConfig fields (systemd's in-order semantics)."""

    def __init__(self, unit: UnitFile, name: str, ctx: SpecifierContext) -> None:
        self.unit = unit
        self.path = unit.path
        self.ctx = ctx
        self.values: dict[str, object] = {"name": name}
        self.lists: dict[str, list] = {key: [] for key in (*_DEPENDENCIES.values(), *_EXEC.values())}
        self.lists.update(environment=[], environment_files=[], wanted_by=[], required_by=[])
        self.warnings: list[str] = []
        self.explicit: set[str] = set()
        self.last_exec_start: Option | None = None

    # -- helpers --------------------------------------------------------------------------------------

    def error(self, option: Option, message: str) -> UnitFileError:
        return UnitFileError(self.path, option.line, f"{option.name}={option.value!r}: {message}")

    def warn(self, option: Option, message: str) -> None:
        where = f"{self.path}:{option.line}" if option.line is not None else self.path
        self.warnings.append(f"{where}: {message}")

    def expand(self, option: Option, text: str | None = None) -> str:
        return expand_specifiers(option.value if text is None else text, self.ctx, self.path, option.line)

    def choice(self, option: Option, allowed: tuple[str, ...]) -> str:
        if option.value not in allowed:
            raise self.error(option, f"unknown value; {option.name}= takes one of: {', '.join(allowed)}")
        return option.value

    def boolean(self, option: Option) -> bool:
        lowered = option.value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise self.error(option, "not a boolean; use yes/no, true/false, on/off or 1/0")

    def timespan(self, option: Option, zero_is_infinity: bool = False) -> float | None:
        try:
            seconds = parse_timespan(option.value)
        except ValueError as exc:
            raise self.error(option, f"{exc}") from None
        return None if zero_is_infinity and seconds == 0 else seconds

    def signal_number(self, option: Option, text: str) -> int:
        number = parse_signal(text)
        if number is None:
            raise self.error(
                option, f"{text!r} is not a signal; use a name such as SIGTERM or TERM, or a number"
            )
        return number

    def exit_statuses(self, option: Option) -> tuple[set[int], set[int]]:
        codes: set[int] = set()
        signals: set[int] = set()
        for word in option.value.split():
            if word.isdigit():
                if int(word) > 255:
                    raise self.error(option, f"exit status {word} is out of range 0-255")
                codes.add(int(word))
            else:
                signals.add(self.signal_number(option, word))
        return codes, signals

    def unit_names(self, option: Option) -> list[str]:
        names = []
        for word in option.value.split():
            expanded = self.expand(option, word)
            try:
                parse_unit_name(expanded)
            except UnitNameError as exc:
                self.warn(option, f"ignoring dependency {expanded!r} in {option.name}=: {exc}")
                continue
            names.append(expanded)
        return names

    def absolute_path(self, option: Option, text: str) -> str:
        if not text.startswith("/"):
            raise self.error(option, f"{text!r} is not an absolute path")
        return text

    # -- [Unit] ---------------------------------------------------------------------------------------

    def unit_option(self, option: Option) -> bool:
        name = option.name
        if name == "Description":
            self.values["description"] = self.expand(option)
        elif name in _DEPENDENCIES:
            target = self.lists[_DEPENDENCIES[name]]
            target.extend(n for n in self.unit_names(option) if n not in target)
        elif name == "StartLimitIntervalSec":
            self.values["start_limit_interval_s"] = self.timespan(option) or 0.0
        elif name == "StartLimitBurst":
            self.values["start_limit_burst"] = self.count(option)
        else:
            return False
        return True

    def count(self, option: Option) -> int:
        if not option.value.isdigit():
            raise self.error(option, "not a non-negative whole number")
        return int(option.value)

    # -- [Service] ------------------------------------------------------------------------------------

    def service_option(self, option: Option) -> bool:
        name, value = option.name, option.value
        if name in _SIMPLE_SERVICE:
            key, parse = _SIMPLE_SERVICE[name]
            result = parse(self, option)
            if result is None:  # RestartSec=infinity / StartLimitInterval=infinity
                raise self.error(option, "infinity is not allowed here")
            self.values[key] = result
            self.explicit.add(key)
        elif name in _EXEC:
            self.exec_option(option)
        elif name in ("TimeoutStartSec", "TimeoutStopSec", "TimeoutSec"):
            seconds = self.timespan(option, zero_is_infinity=True)
            targets = {"TimeoutStartSec": ("timeout_start_s",), "TimeoutStopSec": ("timeout_stop_s",)}
            for key in targets.get(name, ("timeout_start_s", "timeout_stop_s")):
                self.values[key] = seconds
                self.explicit.add(key)
        elif name == "Environment":
            self.environment(option)
        elif name == "EnvironmentFile":
            self.environment_file(option)
        elif name in ("SuccessExitStatus", "RestartPreventExitStatus", "RestartForceExitStatus"):
            self.status_list(option)
        elif name == "WorkingDirectory":
            self.working_directory(option)
        elif name in _STRINGS:
            self.values[_STRINGS[name]] = self.expand(option) if value else None
        elif name == "PIDFile":
            pid_file = self.expand(option) if value else None
            if pid_file and not pid_file.startswith("/"):
                pid_file = f"{self.ctx.runtime_dir}/{pid_file}"  # systemd reads relative PID files from /run
            self.values["pid_file"] = pid_file
        else:
            return False
        return True

    def exec_option(self, option: Option) -> None:
        key = _EXEC[option.name]
        if option.value == "":
            self.lists[key].clear()
            return
        self.lists[key].extend(parse_exec_value(option.value, self.path, option.line, self.ctx))
        if key == "exec_start":
            self.last_exec_start = option

    def environment(self, option: Option) -> None:
        if option.value == "":
            self.lists["environment"].clear()
            return
        pairs, warnings = parse_environment_value_with_warnings(
            option.value, self.path, option.line, self.ctx
        )
        self.lists["environment"].extend(pairs)
        self.warnings.extend(warnings)

    def environment_file(self, option: Option) -> None:
        if option.value == "":
            self.lists["environment_files"].clear()
            return
        text = self.expand(option)
        missing_ok = text.startswith("-")
        path = self.absolute_path(option, text[1:] if missing_ok else text)
        self.lists["environment_files"].append((path, missing_ok))

    def status_list(self, option: Option) -> None:
        key = {
            "SuccessExitStatus": "success",
            "RestartPreventExitStatus": "restart_prevent",
            "RestartForceExitStatus": "restart_force",
        }[option.name]
        codes, signals = (
            self.lists.setdefault(key + "_codes", []),
            self.lists.setdefault(key + "_signals", []),
        )
        if option.value == "":
            codes.clear()
            signals.clear()
            return
        new_codes, new_signals = self.exit_statuses(option)
        codes.extend(new_codes)
        signals.extend(new_signals)

    def working_directory(self, option: Option) -> None:
        if option.value == "":
            self.values["working_directory"] = None
            self.values["working_directory_missing_ok"] = False
            return
        text = self.expand(option)
        missing_ok = text.startswith("-")
        directory = text[1:] if missing_ok else text
        if directory != "~":  # "~" is the home of User=, which only the supervisor can look up
            self.absolute_path(option, directory)
        self.values["working_directory"] = directory
        self.values["working_directory_missing_ok"] = missing_ok

    def output(self, option: Option) -> str:
        if option.value in OUTPUT_VALUES or option.value.startswith(OUTPUT_PREFIXES):
            return option.value
        allowed = ", ".join(OUTPUT_VALUES + tuple(p + "..." for p in OUTPUT_PREFIXES))
        raise self.error(option, f"unknown value; {option.name}= takes one of: {allowed}")

    # -- [Install] ------------------------------------------------------------------------------------

    def install_option(self, option: Option) -> bool:
        if option.name not in ("WantedBy", "RequiredBy"):
            return False
        key = "wanted_by" if option.name == "WantedBy" else "required_by"
        if option.value == "":
            self.lists[key].clear()
        else:
            self.lists[key].extend(n for n in self.unit_names(option) if n not in self.lists[key])
        return True


_SIMPLE_SERVICE: dict[str, tuple[str, Callable[[_Loader, Option], object]]] = {
    "Type": ("type", lambda self, o: self.choice(o, SERVICE_TYPES)),
    "RemainAfterExit": ("remain_after_exit", _Loader.boolean),
    "Restart": ("restart", lambda self, o: self.choice(o, RESTART_VALUES)),
    "RestartSec": ("restart_sec_s", _Loader.timespan),
    "KillMode": ("kill_mode", lambda self, o: self.choice(o, KILL_MODES)),
    "KillSignal": ("kill_signal", lambda self, o: self.signal_number(o, o.value)),
    "SendSIGKILL": ("send_sigkill", _Loader.boolean),
    "NotifyAccess": ("notify_access", lambda self, o: self.choice(o, NOTIFY_ACCESS_VALUES)),
    "StandardOutput": ("standard_output", _Loader.output),
    "StandardError": ("standard_error", _Loader.output),
    "StartLimitInterval": ("start_limit_interval_s", _Loader.timespan),  # the pre-v230 [Service] names
    "StartLimitBurst": ("start_limit_burst", _Loader.count),
}
_STRINGS = {"User": "user", "Group": "group", "SyslogIdentifier": "syslog_identifier"}


def parse_signal(text: str) -> int | None:
    """A signal number from ``SIGTERM``, ``TERM`` or ``15`` (None if it names no signal)."""
    if text.isdigit():
        number = int(text)
        return number if 0 < number < signal.NSIG else None
    name = text if text.startswith("SIG") else "SIG" + text
    if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
        offset = name[9:]
        if not offset.isdigit():
            return None
        base = signal.SIGRTMIN if name.startswith("SIGRTMIN") else signal.SIGRTMAX
        number = base + int(offset) if name.startswith("SIGRTMIN") else base - int(offset)
        return number if signal.SIGRTMIN <= number <= signal.SIGRTMAX else None
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None


def service_config(unit: UnitFile, name: str, specifiers: SpecifierContext | None = None) -> ServiceConfig:
    """The typed configuration of unit ``name`` (see the module docstring). ``specifiers`` defaults to a
    context for ``name`` with this module's defaults (localhost, root)."""
    loader = _Loader(unit, name, specifiers or SpecifierContext(name))
    unit_type = name.rsplit(".", 1)[-1] if "." in name else ""
    is_service = unit_type == "service"
    for option in unit.options:
        section = option.section
        if section == "Unit":
            handled = loader.unit_option(option)
        elif section == "Service" and is_service:
            handled = loader.service_option(option)
        elif section == "Install":
            handled = loader.install_option(option)
        elif section.startswith("X-"):
            continue  # extension sections ([X-Fleet]) belong to others
        else:
            loader.warn(
                option, f"unknown section [{section}] for a .{unit_type} unit, ignoring {option.name}="
            )
            continue
        if not handled and option.name not in _QUIET.get(section, ()) and not option.name.startswith("X-"):
            loader.warn(option, f"unknown or unsupported option {option.name}= in [{section}], ignoring it")
    return _finish(loader, unit_type)


def _finish(loader: _Loader, unit_type: str) -> ServiceConfig:
    values, lists = loader.values, loader.lists
    for key in (*_DEPENDENCIES.values(), *_EXEC.values(), "environment", "environment_files"):
        values[key] = tuple(lists[key])
    values["wanted_by"], values["required_by"] = tuple(lists["wanted_by"]), tuple(lists["required_by"])
    values["success_exit_status"] = frozenset(lists.get("success_codes", ()))
    values["success_signals"] = frozenset(lists.get("success_signals", ()))
    for key in ("restart_prevent", "restart_force"):
        values[f"{key}_exit_status"] = ExitStatusSet(
            frozenset(lists.get(f"{key}_codes", ())), frozenset(lists.get(f"{key}_signals", ()))
        )
    values["unit_type"] = unit_type
    values["warnings"] = tuple(loader.warnings)
    if unit_type == "service":
        _service_defaults_and_checks(loader, values)
    known = {f.name for f in fields(ServiceConfig)}
    return ServiceConfig(**{k: v for k, v in values.items() if k in known})


def _service_defaults_and_checks(loader: _Loader, values: dict[str, object]) -> None:
    """systemd's service_add_extras() defaults and service_verify() refusals (src/core/service.c)."""
    explicit = loader.explicit
    has_start, has_stop = bool(values["exec_start"]), bool(values["exec_stop"])
    if "type" not in explicit:
        values["type"] = "simple" if has_start else "oneshot"  # oneshot is implied without ExecStart=
    if values["type"] in ("exec", "idle"):
        values["type"] = "simple"  # the supervisor starts them the same way
    oneshot = values["type"] == "oneshot"
    if oneshot and "timeout_start_s" not in explicit:
        values["timeout_start_s"] = None
    if values["type"] == "notify" and "notify_access" not in explicit:
        values["notify_access"] = "main"

    def refuse(message: str, option: Option | None = None) -> UnitFileError:
        return UnitFileError(loader.path, option.line if option else None, f"{message} Refusing.")

    if not has_start and not has_stop:
        raise refuse("Service has no ExecStart=, ExecStop=, or SuccessAction=.")
    if not oneshot and not has_start:
        raise refuse("Service has no ExecStart= setting, which is only allowed for Type=oneshot services.")
    if not values.get("remain_after_exit") and not has_start:
        raise refuse(
            "Service has no ExecStart= and no SuccessAction= settings"
            " and does not have RemainAfterExit=yes set."
        )
    if not oneshot and len(values["exec_start"]) > 1:  # type: ignore[arg-type]
        raise refuse(
            "Service has more than one ExecStart= setting, which is only allowed for Type=oneshot services.",
            loader.last_exec_start,
        )
    if oneshot and values.get("restart") in ("always", "on-success"):
        raise refuse(
            "Service has Restart= set to either always or on-success,"
            " which isn't allowed for Type=oneshot services."
        )

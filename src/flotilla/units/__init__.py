"""The unit-file model without I/O: parsing as systemd does, names and templates, Exec lines,
environment, time spans, specifiers, the typed service view, fleet's [X-Fleet] options and unit hash."""

from .environment import (
    parse_environment_file,
    parse_environment_file_with_warnings,
    parse_environment_value,
    parse_environment_value_with_warnings,
)
from .errors import FleetOptionsError, UnitError, UnitFileError, UnitNameError
from .execline import ExecCommand, ExecWord, parse_exec_value, replace_env
from .hash import parse_unit_text_fleet, unit_hash
from .names import UNIT_SUFFIXES, UnitName, escape_name, parse_unit_name, unescape_name
from .service import ExitStatusSet, ServiceConfig, parse_signal, service_config
from .specifiers import SpecifierContext, expand_specifiers
from .timespan import parse_timespan
from .unitfile import Option, UnitFile, parse_unit_text
from .xfleet import (
    FleetOptions,
    fleet_options,
    go_path_match,
    split_multivalue,
    validate_fleet_options,
    validate_fleet_unit,
)

__all__ = [
    "UNIT_SUFFIXES",
    "ExecCommand",
    "ExecWord",
    "ExitStatusSet",
    "FleetOptions",
    "FleetOptionsError",
    "Option",
    "ServiceConfig",
    "SpecifierContext",
    "UnitError",
    "UnitFile",
    "UnitFileError",
    "UnitName",
    "UnitNameError",
    "escape_name",
    "expand_specifiers",
    "fleet_options",
    "go_path_match",
    "parse_environment_file",
    "parse_environment_file_with_warnings",
    "parse_environment_value",
    "parse_environment_value_with_warnings",
    "parse_exec_value",
    "parse_signal",
    "parse_timespan",
    "parse_unit_name",
    "parse_unit_text",
    "parse_unit_text_fleet",
    "replace_env",
    "service_config",
    "split_multivalue",
    "unescape_name",
    "unit_hash",
    "validate_fleet_options",
    "validate_fleet_unit",
]

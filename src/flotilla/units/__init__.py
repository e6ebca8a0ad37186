"""The unit-file model without I/O: parsing as systemd does, names and templates, Exec lines,
environment, time spans, specifiers, the typed service view, fleet's [X-Fleet] options and unit hash."""

from .errors import FleetOptionsError, UnitError, UnitFileError, UnitNameError
from .names import UnitName, escape_name, parse_unit_name, unescape_name
from .unitfile import Option, UnitFile, parse_unit_text

__all__ = [
    "FleetOptionsError",
    "Option",
    "UnitError",
    "UnitFile",
    "UnitFileError",
    "UnitName",
    "UnitNameError",
    "escape_name",
    "parse_unit_name",
    "parse_unit_text",
    "unescape_name",
]

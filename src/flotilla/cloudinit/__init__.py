"""cloud-config as coreos-cloudinit reads it: parse and validate (pure), substitute, apply under a root."""

from .apply import Applied, apply
from .decode import decode_content
from .errors import ApplyError, CloudConfigError, CloudInitError
from .model import OEM, CloudConfig, DropIn, Settings, Unit, Update, User, WriteFile
from .parse import HEADER, check, parse, validate
from .report import ERROR, WARNING, Entry, Report
from .substitute import SUBSTITUTION_NAMES, substitute

__all__ = [
    "ERROR",
    "HEADER",
    "OEM",
    "SUBSTITUTION_NAMES",
    "WARNING",
    "Applied",
    "ApplyError",
    "CloudConfig",
    "CloudConfigError",
    "CloudInitError",
    "DropIn",
    "Entry",
    "Report",
    "Settings",
    "Unit",
    "Update",
    "User",
    "WriteFile",
    "apply",
    "check",
    "decode_content",
    "parse",
    "substitute",
    "validate",
]

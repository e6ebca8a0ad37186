"""Parse and validate a #cloud-config without I/O: YAML with line numbers → findings + a typed tree.

The checks follow coreos-cloudinit's validator (config/validate): the header, YAML errors, unknown keys,
types, deprecated keys, value patterns, undecodable content, files under /usr, write_files under coreos and
the discovery URL, with its messages. Line numbers come from PyYAML's node marks (the original guessed them
with a regex over the text). Flotilla refuses more than coreos-cloudinit, because a machine booted from a
half-understood config is worse than one that does not boot:

* ``incorrect type`` is an error (the original warns, then silently drops the value at boot); a key with
  no value at all stays a warning and counts as not given;
* units and users need a name; unit names, unit contents and drop-ins are checked with ``flotilla.units``
  so a broken unit names its line in the cloud-config;
* values that would corrupt the files they are written to (a line break in a daemon setting, ``:`` in a
  passwd field) are refused.

Unknown keys and deprecated keys are warnings, as in the original: they change nothing at boot.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from flotilla.units import UnitError, parse_unit_name, parse_unit_text

from . import schema
from .decode import decode_content
from .errors import CloudConfigError
from .model import OEM, CloudConfig, DropIn, Settings, Unit, Update, User, WriteFile
from .report import Report, _Collector
from .substitute import substitute

HEADER = "#cloud-config"

_TAG = "tag:yaml.org,2002:"
_SCALAR_KIND_BY_TAG = {_TAG + "int": schema.INT, _TAG + "float": schema.FLOAT, _TAG + "bool": schema.BOOL}
_NULL_TAG = _TAG + "null"
# useradd's default NAME_REGEX, widened to upper case as many distributions do.
_USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


@dataclass
class _Obj:
    """A mapping that matched a Struct: values by canonical key, with the line and node of each key."""

    line: int
    values: dict[str, Any]
    lines: dict[str, int]
    nodes: dict[str, yaml.Node]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


def validate(text: str) -> Report:
    """Every finding for ``text`` (no substitution: tokens are checked as written)."""
    return check(text)[1]


def parse(
    text: str, *, source: str = "<cloud-config>", substitutions: Mapping[str, str] | None = None
) -> CloudConfig:
    """The typed config of ``text`` after substitution; CloudConfigError (with the report) on any error."""
    config, report = check(text, substitutions=substitutions)
    if config is None:
        raise CloudConfigError(source, report)
    return config


def check(text: str, *, substitutions: Mapping[str, str] | None = None) -> tuple[CloudConfig | None, Report]:
    """Validate and build in one pass: ``(config, report)``, config None when the report has errors."""
    found = _Collector()
    config = _check(text, substitutions, found)
    report = found.report()
    return (None if report.has_errors else config), report


def _check(text: str, substitutions: Mapping[str, str] | None, found: _Collector) -> CloudConfig | None:
    if text == "":
        return CloudConfig()  # empty user data: nothing to do, as coreos-cloudinit treats it
    first_line = text.split("\n", 1)[0]
    if first_line.startswith("#!"):
        found.error(1, "scripts (#!) are not supported by Flotilla; start the document with #cloud-config")
        return None
    if first_line.rstrip() != HEADER:
        found.error(1, 'must be "#cloud-config" or begin with "#!"')
        return None
    if substitutions is not None:
        text = substitute(text, substitutions)
    root = _compose(text, found)
    if root is None:
        return None if found.report().has_errors else CloudConfig()
    if not isinstance(root, yaml.MappingNode):
        found.error(_line(root), "the document must be a mapping of keys (hostname, coreos, users, ...)")
        return None
    top = _walk(root, schema.CLOUD_CONFIG, "", _line(root), found, parent="")
    assert isinstance(top, _Obj)
    return _build(top, found)


def _compose(text: str, found: _Collector) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = error.problem or error.context or "invalid YAML"
        if error.context and error.problem:
            message = f"{error.problem} ({error.context})"
        found.error(mark.line + 1 if mark else 1, message)
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1 if isinstance(error.position, int) else 1
        char = chr(error.character) if isinstance(error.character, int) else error.character
        found.error(line, f"character {char!r} is not allowed in YAML (remove it or quote it with an escape)")
    except yaml.YAMLError as error:
        found.error(1, str(error))
    except RecursionError:
        found.error(1, "the document is nested too deeply to read")
    return None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


# --- structure: types, unknown and deprecated keys, value patterns ---------------------------------------


def _walk(node: yaml.Node, kind: object, name: str, line: int, found: _Collector, parent: str) -> Any:
    """The Python value of ``node`` if it has ``kind``; None (after reporting why) if it does not."""
    if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
        found.warning(line, f'incorrect type for "{name}" (want {schema.human_type(kind)})')
        return None
    if isinstance(kind, schema.Struct):
        if isinstance(node, yaml.MappingNode):
            return _walk_struct(node, kind, line, found, parent)
    elif isinstance(kind, schema.ListOf):
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                value = _walk(item, kind.element, f"{name}[{index}]", _line(item), found, parent)
                if value is not None:
                    items.append(value)
            return items
    elif isinstance(node, yaml.ScalarNode):
        actual = _SCALAR_KIND_BY_TAG.get(node.tag, schema.STRING)
        if kind == schema.STRING:
            return node.value  # as written: permissions 0644 stays "0644", not 420
        if kind == actual or (kind == schema.FLOAT and actual == schema.INT):
            return _CONSTRUCTOR.construct_object(node)
    found.error(line, f'incorrect type for "{name}" (want {schema.human_type(kind)})')
    return None


def _walk_struct(
    node: yaml.MappingNode, kind: schema.Struct, line: int, found: _Collector, parent: str
) -> _Obj:
    obj = _Obj(line, {}, {}, {})
    for key_node, value_node in node.value:
        key_line = _line(key_node)
        if not isinstance(key_node, yaml.ScalarNode):
            found.warning(key_line, "unrecognized key (a key must be a plain name)")
            continue
        key = str(key_node.value)
        canonical = key.replace("-", "_")
        spec = kind.fields.get(canonical)
        if spec is None:
            if parent == "coreos" and canonical == "write_files":
                found.warning(key_line, "write_files doesn't belong under coreos")
            else:
                found.warning(key_line, f'unrecognized key "{key}"')
            continue
        if spec.deprecated:
            found.warning(key_line, f'deprecated key "{key}" ({spec.deprecated})')
        value = _walk(value_node, spec.kind, key, key_line, found, parent=canonical)
        if value is None:
            continue
        # "\n" too: re's $ also matches before a final line break, which no valid value has.
        if spec.valid is not None and value != "" and (not spec.valid.search(value) or "\n" in value):
            found.error(key_line, f'invalid value {value} for "{key}" (valid: {spec.valid.pattern})')
            continue
        obj.values[canonical] = value
        obj.lines[canonical] = key_line
        obj.nodes[canonical] = value_node
    return obj


# --- the typed tree, with the checks that need more than one key ----------------------------------------


def _build(top: _Obj, found: _Collector) -> CloudConfig:
    coreos: _Obj = top.get("coreos") or _Obj(top.line, {}, {}, {})
    for section in ("etcd", "etcd2"):
        if "discovery" in (coreos.get(section) or _Obj(0, {}, {}, {})).values:
            _check_discovery(coreos.values[section], found)
    _check_hostname(top, found)
    update: _Obj | None = coreos.get("update")
    oem: _Obj | None = coreos.get("oem")
    return CloudConfig(
        hostname=top.get("hostname"),
        ssh_authorized_keys=tuple(key.strip() for key in top.get("ssh_authorized_keys", ())),
        users=tuple(u for u in (_user(obj, found) for obj in top.get("users", ())) if u is not None),
        write_files=tuple(
            f for f in (_write_file(obj, found) for obj in top.get("write_files", ())) if f is not None
        ),
        manage_etc_hosts=top.get("manage_etc_hosts") or None,
        **{section: _settings(coreos.get(section), found) for section in schema.SECTION_SCHEMAS},
        update=Update(**{k: v or None for k, v in update.values.items()}) if update else Update(),
        oem=OEM(**{k: v or None for k, v in oem.values.items()}) if oem else OEM(),
        units=tuple(u for u in (_unit(obj, found) for obj in coreos.get("units", ())) if u is not None),
    )


def _check_hostname(top: _Obj, found: _Collector) -> None:
    hostname = top.get("hostname") or ""
    if any(c.isspace() or c == "/" for c in hostname):
        found.error(top.line_of("hostname"), f'invalid value {hostname!r} for "hostname": no blanks or "/"')


def _check_discovery(section: _Obj, found: _Collector) -> None:
    # Go's url.ParseRequestURI: an absolute URL or an absolute path, nothing else.
    url = section.values["discovery"]
    parts = urlsplit(url) if not any(c.isspace() for c in url) else None
    if parts is None or not ((parts.scheme and parts.netloc) or url.startswith("/")):
        found.warning(section.line_of("discovery"), "discovery URL is not valid")


def _settings(section: _Obj | None, found: _Collector) -> Settings:
    if section is None:
        return ()
    pairs = []
    for key, value in section.values.items():
        text = _setting_text(value)
        if "\n" in text or "\r" in text:
            found.error(section.line_of(key), f'invalid value for "{key}": a setting must be one line')
            continue
        pairs.append((key.replace("_", "-"), text))
    return tuple(pairs)


def _setting_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text  # Go prints 2.0 as 2
    return str(value)


def _user(obj: _Obj, found: _Collector) -> User | None:
    name = obj.get("name", "")
    if not name:
        found.error(obj.line, 'user without a name (add "name: <login>")')
        return None
    if not _USER_NAME.match(name):
        found.error(
            obj.line_of("name"), f'invalid user name "{name}" (want letters, digits, "_", "." or "-")'
        )
        return None
    for key in ("passwd", "gecos", "homedir", "shell", "primary_group"):
        if any(c in obj.get(key, "") for c in ":\n"):
            found.error(obj.line_of(key), f'invalid value for "{key}": ":" and line breaks are not allowed')
            return None
    fields = {k: v for k, v in obj.values.items() if not k.startswith("coreos_ssh_import")}
    fields["groups"] = tuple(fields.get("groups", ()))
    fields["ssh_authorized_keys"] = tuple(k.strip() for k in fields.get("ssh_authorized_keys", ()))
    return User(**fields, line=obj.line)


def _write_file(obj: _Obj, found: _Collector) -> WriteFile | None:
    path = obj.get("path", "")
    if not path:
        found.error(obj.line, 'write_files entry without a "path"')
        return None
    directory = posixpath.dirname(posixpath.normpath("/" + path.lstrip("/")))
    if directory == "/usr" or directory.startswith("/usr/"):
        found.error(obj.line_of("path"), "file cannot be written to a read-only filesystem")
        return None
    encoding = obj.get("encoding") or None
    try:
        content = decode_content(obj.get("content", ""), encoding)
    except ValueError:
        found.error(obj.line_of("content"), f'content cannot be decoded as "{encoding}"')
        return None
    permissions = obj.get("permissions") or "0644"
    return WriteFile(
        path=path,
        content=content,
        permissions=int(permissions, 8),
        owner=obj.get("owner") or None,
        encoding=encoding,
        line=obj.line,
    )


def _unit(obj: _Obj, found: _Collector) -> Unit | None:
    name = obj.get("name", "")
    if not name:
        found.error(obj.line, 'unit without a name (add "name: <unit>.service")')
        return None
    ok = _check_unit_name(name, obj.line_of("name"), found)
    content = obj.get("content")
    if content is not None and not _check_unit_text(content, name, obj, "content", found):
        ok = False
    drop_ins = []
    for drop_in in obj.get("drop_ins", ()):
        checked = _drop_in(drop_in, name, found)
        if checked is None:
            ok = False
        else:
            drop_ins.append(checked)
    if not ok:
        return None
    return Unit(
        name=name,
        content=content,
        command=obj.get("command") or None,
        enable=obj.get("enable", False),
        runtime=obj.get("runtime", False),
        mask=obj.get("mask", False),
        drop_ins=tuple(drop_ins),
        line=obj.line,
    )


def _check_unit_name(name: str, line: int, found: _Collector) -> bool:
    if name.rsplit(".", 1)[-1] in ("network", "netdev", "link"):
        # networkd's files are not systemd units; the name only has to be a safe file name.
        if "/" in name or name.startswith("."):
            found.error(line, f'invalid unit name "{name}": a file name without "/" is needed')
            return False
        return True
    try:
        parse_unit_name(name)
    except UnitError as error:
        found.error(line, f"invalid unit name: {error}")
        return False
    return True


def _drop_in(obj: _Obj, unit: str, found: _Collector) -> DropIn | None:
    name = obj.get("name", "")
    if not name or "/" in name:
        found.error(obj.line, f'drop-in of "{unit}" needs a "name" without "/" (e.g. 10-override.conf)')
        return None
    if not name.endswith(".conf"):
        found.warning(obj.line_of("name"), f'drop-in "{name}" does not end in ".conf"; systemd ignores it')
    content = obj.get("content", "")
    if not _check_unit_text(content, f"{unit}.d/{name}", obj, "content", found):
        return None
    return DropIn(name, content)


def _check_unit_text(text: str, what: str, obj: _Obj, key: str, found: _Collector) -> bool:
    """Parse unit text with flotilla.units; report its error at the matching cloud-config line."""
    try:
        parse_unit_text(text, what)
    except UnitError as error:
        line = getattr(error, "line", None)
        message = getattr(error, "message", str(error))
        found.error(_content_line(obj, key, line), f'invalid unit "{what}": {message}')
        return False
    return True


def _content_line(obj: _Obj, key: str, unit_line: int | None) -> int:
    node = obj.nodes.get(key)
    # Only literal blocks (content: |) keep the text's lines one-to-one with the document's.
    if unit_line is None or not isinstance(node, yaml.ScalarNode) or node.style != "|":
        return obj.line_of(key)
    return node.start_mark.line + 1 + unit_line

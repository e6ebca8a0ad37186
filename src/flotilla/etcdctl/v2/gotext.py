"""Go's text conventions that etcdctl's output inherits: ``%q`` quoting and encoding/json's escaping."""

from __future__ import annotations

import json

__all__ = ["go_json", "go_quote"]


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string: double quotes, backslash escapes for quotes and control characters."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(char)])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def go_json(value: object) -> str:
    """encoding/json's compact output (Go 1.19, as Debian's etcdctl is built): UTF-8 kept; control
    characters other than \\n \\r \\t as \\u00XX; ``<``, ``>``, ``&``, U+2028, U+2029 escaped."""
    if isinstance(value, str):
        return _go_json_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_json_string(k)}:{go_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _go_json_string(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[char])
        elif code < 0x20 or char in "<>&\u2028\u2029":
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")  # Go writes invalid UTF-8 as the replacement character
        else:
            out.append(char)
    return '"' + "".join(out) + '"'

"""``$private_ipv4`` and friends, replaced in the raw text before it is parsed, as coreos-cloudinit does.

Replacing text rather than parsed values is what the original does (initialize/env.go), so a token works
anywhere: in a key, in a unit's content, in a write_files body. ``\\$private_ipv4`` stands for the token
itself. A token whose value is not given becomes empty, as it does on CoreOS when the metadata and the
``COREOS_*`` environment both lack it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

SUBSTITUTION_NAMES = ("private_ipv4", "public_ipv4", "private_ipv6", "public_ipv6")

# Longest names first is not needed (no name is a prefix of another); the optional backslash escapes.
_TOKEN = re.compile(r"(\\?)\$(" + "|".join(SUBSTITUTION_NAMES) + ")")


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace every ``$name`` token of ``text`` with ``values[name]`` (keys with or without ``$``).

    ValueError if a key is not one of SUBSTITUTION_NAMES or a value holds a line break (it would move
    every later line of the document and could inject YAML).
    """
    normalized: dict[str, str] = {}
    for key, value in values.items():
        name = key[1:] if key.startswith("$") else key
        if name not in SUBSTITUTION_NAMES:
            raise ValueError(f"unknown substitution {key!r}; known are ${', $'.join(SUBSTITUTION_NAMES)}")
        if "\n" in value or "\r" in value:
            raise ValueError(f"the value of ${name} contains a line break: {value!r}")
        normalized[name] = value

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return "$" + match.group(2)
        return normalized.get(match.group(2), "")

    return _TOKEN.sub(replace, text)

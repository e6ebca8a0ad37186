"""Key paths as etcd's v2 store treats them: rooted, cleaned like Go's ``path.Clean``."""

from __future__ import annotations

import posixpath


def clean_path(path: str) -> str:
    """Go's ``path.Clean(path.Join("/", path))``: rooted, no empty, ``.`` or ``..`` segments, no trailing
    slash (except the root itself)."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")  # POSIX keeps a leading "//"; Go does not


def split_path(path: str) -> tuple[str, str]:
    """(parent directory, last name) of a cleaned path; the root is ("/", "")."""
    parent, _, name = path.rpartition("/")
    return (parent or "/"), name

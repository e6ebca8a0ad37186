"""The snapshot files' exceptions."""

from __future__ import annotations


class SnapError(Exception):
    """A snapshot could not be saved or read: the message names the file and what was wrong."""

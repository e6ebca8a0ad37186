"""Known raft bugs that tests can switch on, to prove the simulator's checks catch them.

Test-only: nothing in configuration or on the command line reaches this module. The core consults
``ACTIVE`` at the few places where each bug lives; it is empty in every real run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum


class Bug(Enum):
    DOUBLE_VOTE = "grant a second vote in the same term"
    COMMIT_PREVIOUS_TERM = "commit an entry from a previous term by counting replicas (raft §5.4.2)"
    KEEP_CONFLICTING_SUFFIX = "append after a conflict without truncating the conflicting suffix"
    VOTE_FOR_STALE_LOG = "grant a vote without the election restriction (raft §5.4.1)"
    READ_WITHOUT_QUORUM = "answer ReadIndex without confirming leadership with a heartbeat quorum"


ACTIVE: frozenset[Bug] = frozenset()


@contextmanager
def injected(*bugs: Bug) -> Iterator[None]:
    """Switch ``bugs`` on for the duration of a with-block (tests only)."""
    global ACTIVE
    previous = ACTIVE
    ACTIVE = previous | frozenset(bugs)
    try:
        yield
    finally:
        ACTIVE = previous

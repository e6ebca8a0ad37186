"""The store's operation counters, shown at /v2/stats/store (etcd's v2store/stats.go)."""

from __future__ import annotations

# (JSON name, attribute) in etcd's order; "watchers" comes last and is not a counter.
_FIELDS = (
    ("getsSuccess", "gets_success"),
    ("getsFail", "gets_fail"),
    ("setsSuccess", "sets_success"),
    ("setsFail", "sets_fail"),
    ("deleteSuccess", "delete_success"),
    ("deleteFail", "delete_fail"),
    ("updateSuccess", "update_success"),
    ("updateFail", "update_fail"),
    ("createSuccess", "create_success"),
    ("createFail", "create_fail"),
    ("compareAndSwapSuccess", "compare_and_swap_success"),
    ("compareAndSwapFail", "compare_and_swap_fail"),
    ("compareAndDeleteSuccess", "compare_and_delete_success"),
    ("compareAndDeleteFail", "compare_and_delete_fail"),
    ("expireCount", "expire_count"),
)


class StoreStats:
    """Success and failure counts per operation, and the number of expired nodes.

    The counts follow etcd 3.4 exactly, including its slips: a root-read-only update, delete or
    compareAndSwap, an update of a directory with a value, and a compareAndDelete that fails on a
    directory or a comparison all count as successes there (those paths return without setting the
    error the counting looks at), so they do here; and a create that finds a file in the way of its
    parent directories counts a failed set besides its failed create.
    """

    def __init__(self) -> None:
        self.gets_success = 0
        self.gets_fail = 0
        self.sets_success = 0
        self.sets_fail = 0
        self.delete_success = 0
        self.delete_fail = 0
        self.update_success = 0
        self.update_fail = 0
        self.create_success = 0
        self.create_fail = 0
        self.compare_and_swap_success = 0
        self.compare_and_swap_fail = 0
        self.compare_and_delete_success = 0
        self.compare_and_delete_fail = 0
        self.expire_count = 0

    def count(self, operation: str, success: bool) -> None:
        """Count one ``operation`` ("gets", "sets", "delete", "update", "create", "compare_and_swap",
        "compare_and_delete")."""
        name = f"{operation}_{'success' if success else 'fail'}"
        setattr(self, name, getattr(self, name) + 1)

    def to_json(self, watchers: int) -> dict:
        """etcd's /v2/stats/store body, in its field order."""
        out = {json_name: getattr(self, attr) for json_name, attr in _FIELDS}
        out["watchers"] = watchers
        return out

    def to_state(self) -> dict:
        """The counters as plain data, for snapshots."""
        return {json_name: getattr(self, attr) for json_name, attr in _FIELDS}

    @classmethod
    def from_state(cls, state: dict) -> StoreStats:
        stats = cls()
        for json_name, attr in _FIELDS:
            setattr(stats, attr, int(state.get(json_name, 0)))
        return stats

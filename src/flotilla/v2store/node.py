"""Nodes of the v2 tree: the internal ``_Node`` and the ``NodeExtern`` the API shows.

A node is a file (``children is None``) or a directory. Expiry times are absolute Unix nanoseconds;
``None`` means permanent. Names starting with ``_`` are hidden: listings omit them, direct reads do not.
"""

from __future__ import annotations

from dataclasses import dataclass

_NS_PER_S = 1_000_000_000


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of the proleptic Gregorian day ``days`` after 1970-01-01, for any year."""
    # Howard Hinnant's days-to-civil algorithm: eras of 400 years are exactly 146097 days.
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


def format_rfc3339_nano(unix_ns: int) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC instant: the fraction has its trailing zeros trimmed and is
    left out entirely when the instant is a whole second, as ``time.Time.MarshalJSON`` writes it."""
    seconds, nanos = divmod(unix_ns, _NS_PER_S)
    days, second_of_day = divmod(seconds, 86400)
    year, month, day = _civil_from_days(days)
    hour, rest = divmod(second_of_day, 3600)
    minute, second = divmod(rest, 60)
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}Z"


def ttl_seconds(expire_ns: int, now_ns: int) -> int:
    """etcd's remaining TTL: the ceiling of the remaining time in whole seconds for a future expiry; for
    a past one Go's truncating division, so 0..-0.999 s shows 0 (omitted in JSON) and -1.5 s shows -1."""
    remaining = expire_ns - now_ns
    whole = abs(remaining) // _NS_PER_S
    if remaining < 0:
        return -whole
    return whole + (1 if remaining % _NS_PER_S else 0)


@dataclass(eq=False)
class NodeExtern:
    """A node as a response or an event shows it. Treat as read-only: events are shared by watchers.

    ``value`` is None for directories and for the node of delete/expire/compareAndDelete events; an
    empty string is a real value and is shown. ``nodes`` is None when the directory's children are not
    listed. The root's key ``"/"`` is not rendered (etcd shows the root without a key).
    """

    key: str
    value: str | None = None
    dir: bool = False
    expiration_ns: int | None = None
    ttl: int = 0
    modified_index: int = 0
    created_index: int = 0
    nodes: list[NodeExtern] | None = None

    def to_json(self) -> dict:
        """etcd's JSON, in its field order, with Go's omitempty rules."""
        out: dict = {}
        if self.key and self.key != "/":
            out["key"] = self.key
        if self.value is not None:
            out["value"] = self.value
        if self.dir:
            out["dir"] = True
        if self.expiration_ns is not None:
            out["expiration"] = format_rfc3339_nano(self.expiration_ns)
        if self.ttl:
            out["ttl"] = self.ttl
        if self.nodes:
            out["nodes"] = [child.to_json() for child in self.nodes]
        if self.modified_index:
            out["modifiedIndex"] = self.modified_index
        if self.created_index:
            out["createdIndex"] = self.created_index
        return out


class _Node:
    """One node of the tree. ``children`` maps names to nodes in insertion order (etcd's Go map has no
    order; insertion order is one of the orders it may show)."""

    __slots__ = ("path", "created_index", "modified_index", "parent", "expire_ns", "value", "children")

    def __init__(
        self,
        path: str,
        created_index: int,
        parent: _Node | None,
        expire_ns: int | None,
        *,
        value: str = "",
        is_dir: bool = False,
    ) -> None:
        self.path = path
        self.created_index = created_index
        self.modified_index = created_index
        self.parent = parent
        self.expire_ns = expire_ns
        self.value = value
        self.children: dict[str, _Node] | None = {} if is_dir else None

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_hidden(self) -> bool:
        return self.name.startswith("_")

    def expiration_and_ttl(self, now_ns: int) -> tuple[int | None, int]:
        if self.expire_ns is None:
            return None, 0
        return self.expire_ns, ttl_seconds(self.expire_ns, now_ns)

    def compare(self, prev_value: str, prev_index: int) -> str | None:
        """None when the node matches (an empty ``prev_value`` / zero ``prev_index`` is not compared),
        else etcd's cause text: value mismatch, index mismatch, or both (value first)."""
        index_ok = prev_index == 0 or self.modified_index == prev_index
        value_ok = prev_value == "" or self.value == prev_value
        if index_ok and value_ok:
            return None
        if index_ok:
            return f"[{prev_value} != {self.value}]"
        if value_ok:
            return f"[{prev_index} != {self.modified_index}]"
        return f"[{prev_value} != {self.value}] [{prev_index} != {self.modified_index}]"

    def listing(self, recursive: bool, sorted_: bool, now_ns: int) -> list[NodeExtern]:
        """The visible children (hidden ones left out); nested directories are listed when recursive."""
        assert self.children is not None
        nodes = [
            child.repr(recursive, sorted_, now_ns) for child in self.children.values() if not child.is_hidden
        ]
        if sorted_:
            nodes.sort(key=lambda n: n.key)
        return nodes

    def repr(self, recursive: bool, sorted_: bool, now_ns: int) -> NodeExtern:
        """etcd's ``node.Repr``: a directory lists its children only when recursive."""
        expiration, ttl = self.expiration_and_ttl(now_ns)
        extern = NodeExtern(
            key=self.path,
            expiration_ns=expiration,
            ttl=ttl,
            modified_index=self.modified_index,
            created_index=self.created_index,
        )
        if self.is_dir:
            extern.dir = True
            if recursive:
                extern.nodes = self.listing(recursive, sorted_, now_ns)
        else:
            extern.value = self.value
        return extern

"""The store's snapshot format: the tree, the index and the counters as JSON.

``{"version": 1, "index": N, "stats": {...}, "root": DIR}`` where a directory is
``{"dir": true, "created": i, "modified": i, "expire": ns|null, "children": {name: NODE, ...}}`` (children in
the tree's order) and a file ``{"value": s, "created": i, "modified": i, "expire": ns|null}``.
"""

from __future__ import annotations

import json

from .node import _Node
from .stats import StoreStats

_VERSION = 1


def encode_state(root: _Node, index: int, stats: StoreStats) -> bytes:
    state = {"version": _VERSION, "index": index, "stats": stats.to_state(), "root": _encode(root)}
    return json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()


def decode_state(data: bytes) -> tuple[_Node, int, StoreStats]:
    """(root, index, stats) from ``encode_state`` bytes; ValueError if they are not such a snapshot."""
    state = json.loads(data)
    if not isinstance(state, dict) or state.get("version") != _VERSION:
        raise ValueError("not a v2 store snapshot (version 1)")
    root = _decode(state["root"], "/", None)
    if not root.is_dir:
        raise ValueError("v2 store snapshot: the root is not a directory")
    return root, int(state["index"]), StoreStats.from_state(state.get("stats", {}))


def _encode(node: _Node) -> dict:
    out: dict = {}
    if node.children is not None:
        out["dir"] = True
    else:
        out["value"] = node.value
    out["created"] = node.created_index
    out["modified"] = node.modified_index
    out["expire"] = node.expire_ns
    if node.children is not None:
        out["children"] = {name: _encode(child) for name, child in node.children.items()}
    return out


def _decode(raw: dict, path: str, parent: _Node | None) -> _Node:
    expire = raw.get("expire")
    node = _Node(
        path,
        int(raw["created"]),
        parent,
        None if expire is None else int(expire),
        value=str(raw.get("value", "")),
        is_dir=bool(raw.get("dir")),
    )
    node.modified_index = int(raw["modified"])
    if node.children is not None:
        for name, child in raw.get("children", {}).items():
            child_path = f"/{name}" if path == "/" else f"{path}/{name}"
            node.children[name] = _decode(child, child_path, node)
    return node

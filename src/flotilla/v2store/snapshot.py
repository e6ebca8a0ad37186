"""The store's snapshot format: the tree, the index and the counters as JSON.

``{"version": 2, "index": N, "stats": {...}, "nodes": [NODE, ...]}``: the nodes in pre-order (a directory
before its children, children in the tree's order), each ``{"key": path, "dir": true, "created": i,
"modified": i, "expire": ns|null}`` for a directory or ``{"key": path, "value": s, ...}`` for a file.
The list is flat so that neither writing nor reading it recurses: a tree may be deeper than Python's
stack (etcd has no depth limit), and a snapshot that cannot be written or read stops the member.
Version 1 (a nested ``"root"``) is still read.
"""

from __future__ import annotations

import json

from .node import _Node
from .stats import StoreStats

_VERSION = 2
_NESTED_VERSION = 1


def encode_state(root: _Node, index: int, stats: StoreStats) -> bytes:
    nodes = []
    stack = [root]
    while stack:
        node = stack.pop()
        nodes.append(_encode(node))
        if node.children:
            stack.extend(reversed(list(node.children.values())))
    state = {"version": _VERSION, "index": index, "stats": stats.to_state(), "nodes": nodes}
    return json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()


def decode_state(data: bytes) -> tuple[_Node, int, StoreStats]:
    """(root, index, stats) from ``encode_state`` bytes; ValueError if they are not such a snapshot."""
    state = json.loads(data)
    if not isinstance(state, dict) or state.get("version") not in (_VERSION, _NESTED_VERSION):
        raise ValueError("not a v2 store snapshot (version 1 or 2)")
    if state["version"] == _NESTED_VERSION:
        root = _decode_nested(state["root"], "/", None)
    else:
        root = _decode_flat(state["nodes"])
    if not root.is_dir:
        raise ValueError("v2 store snapshot: the root is not a directory")
    return root, int(state["index"]), StoreStats.from_state(state.get("stats", {}))


def _encode(node: _Node) -> dict:
    out: dict = {"key": node.path}
    if node.children is not None:
        out["dir"] = True
    else:
        out["value"] = node.value
    out["created"] = node.created_index
    out["modified"] = node.modified_index
    out["expire"] = node.expire_ns
    return out


def _new_node(raw: dict, path: str, parent: _Node | None) -> _Node:
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
    return node


def _decode_flat(raws: list) -> _Node:
    if not raws or raws[0].get("key") != "/":
        raise ValueError("v2 store snapshot: the first node is not the root")
    root = _new_node(raws[0], "/", None)
    by_path = {"/": root}
    for raw in raws[1:]:
        path = str(raw["key"])
        parent_path, _, name = path.rpartition("/")
        parent = by_path.get(parent_path or "/")
        if parent is None or parent.children is None or not name:
            raise ValueError(f"v2 store snapshot: {path!r} comes before its directory")
        node = _new_node(raw, path, parent)
        parent.children[name] = node
        by_path[path] = node
    return root


def _decode_nested(raw: dict, path: str, parent: _Node | None) -> _Node:
    node = _new_node(raw, path, parent)
    if node.children is not None:
        for name, child in raw.get("children", {}).items():
            child_path = f"/{name}" if path == "/" else f"{path}/{name}"
            node.children[name] = _decode_nested(child, child_path, node)
    return node

"""What etcdctl 3.4's v2 verbs print for a keys-API answer (ctlv2's printResponseKey): ``simple``,
``extended`` or ``json``, the latter the Go client's Response struct re-encoded (every node has a
``value`` and a ``nodes``, null when absent; no ``prevNode`` is ``null``)."""

from __future__ import annotations

import sys

from flotilla.gotext import go_json

__all__ = ["KeysResponse", "go_node", "print_response"]


class KeysResponse:
    """A successful keys answer: the body's action/node/prevNode and the ``X-Etcd-Index`` header."""

    def __init__(self, action: str, node: dict | None, prev_node: dict | None, index: int) -> None:
        self.action, self.node, self.prev_node, self.index = action, node, prev_node, index

    @classmethod
    def from_body(cls, body: dict, index: int) -> KeysResponse:
        return cls(body.get("action", ""), body.get("node"), body.get("prevNode"), index)


def go_node(node: dict | None) -> dict | None:
    """The node as the Go client's Node struct marshals it (its fields, its order, its omissions)."""
    if node is None:
        return None
    out: dict = {"key": node.get("key", "")}
    if node.get("dir"):
        out["dir"] = True
    out["value"] = node.get("value", "")
    nodes = node.get("nodes")
    out["nodes"] = [go_node(child) for child in nodes] if isinstance(nodes, list) else None
    out["createdIndex"] = node.get("createdIndex", 0)
    out["modifiedIndex"] = node.get("modifiedIndex", 0)
    if node.get("expiration"):
        out["expiration"] = node["expiration"]
    if node.get("ttl"):
        out["ttl"] = node["ttl"]
    return out


def print_response(response: KeysResponse, output: str) -> None:
    """Print ``response`` in the ``--output`` format; an unknown format is reported on stderr only."""
    node = response.node or {}
    prev = response.prev_node
    if output == "simple":
        if response.action != "delete":
            print(node.get("value", ""))
        else:
            print("PrevNode.Value:", (prev or {}).get("value", ""))
    elif output == "extended":
        # rfc2822-style blocks, as etcdctl writes them
        print("Key:", node.get("key", ""))
        print("Created-Index:", node.get("createdIndex", 0))
        print("Modified-Index:", node.get("modifiedIndex", 0))
        if prev is not None:
            print("PrevNode.Value:", prev.get("value", ""))
        print("TTL:", node.get("ttl", 0))
        print("Index:", response.index)
        if response.action != "delete":
            print("")
            print(node.get("value", ""))
    elif output == "json":
        body = {"action": response.action, "node": go_node(response.node), "prevNode": go_node(prev)}
        print(go_json(body))
    else:
        print("Unsupported output format:", output, file=sys.stderr)

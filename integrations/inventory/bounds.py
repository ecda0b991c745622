"""Bounds on an inventory file: size, nesting depth and alias expansion.

PyYAML composes an alias as a shared node, so a few kilobytes of anchors that repeat
anchors (a "billion laughs") compose cheaply but expand exponentially when built into
Python objects -- on serve, that stalled the whole process. :func:`check_graph` walks
the composed node graph once (each shared node is visited once, iteratively) and counts
the nodes the file would expand to, and how deep they nest, before anything is built.
A recursive alias (a node that contains itself) stays allowed,
as PyYAML builds it: it adds one node, not an infinite expansion.
The budget grows with the file, so large honest inventories with merge keys
(``<<: *defaults`` on every host) pass while a small file that explodes does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from workflows.errors import InventoryError

__all__ = [
    "MAX_INVENTORY_BYTES",
    "MAX_INVENTORY_DEPTH",
    "NODE_BUDGET_BASE",
    "NODE_BUDGET_PER_BYTE",
    "check_graph",
    "check_size",
]

MAX_INVENTORY_BYTES = 64 * 1024 * 1024
"""An inventory file larger than this (64 MiB) is refused before it is read."""
MAX_INVENTORY_DEPTH = 100
"""Mappings and sequences nested deeper than this are refused."""
NODE_BUDGET_BASE = 100_000
NODE_BUDGET_PER_BYTE = 4
"""A file of N bytes may expand (aliases counted as the nodes they repeat) to at most
``NODE_BUDGET_BASE + NODE_BUDGET_PER_BYTE * N`` nodes."""


def check_size(path: Path) -> None:
    """Refuse a file over :data:`MAX_INVENTORY_BYTES` (a missing file is the reader's error)."""
    try:
        size = path.stat().st_size
    except OSError:
        return
    if size > MAX_INVENTORY_BYTES:
        raise InventoryError(
            f"{path}:1: inventory file is {size} bytes; the limit is {MAX_INVENTORY_BYTES}"
        )


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _is_collection(node: Node) -> bool:
    return isinstance(node, (MappingNode, SequenceNode))


def check_graph(root: Node | None, path: Path, size: int) -> None:
    """Refuse a composed document that nests deeper than :data:`MAX_INVENTORY_DEPTH` or
    expands beyond the node budget for a file of ``size`` bytes."""
    if root is None:
        return
    budget = NODE_BUDGET_BASE + NODE_BUDGET_PER_BYTE * size
    done: dict[int, tuple[int, int]] = {}  # id(collection) -> (expanded nodes, height)
    on_path: set[int] = set()
    stack: list[tuple[Node, list[Node] | None]] = [(root, None)]

    def fail(node: Node, message: str) -> InventoryError:
        mark: Any = node.start_mark
        line = mark.line + 1 if mark is not None else 1
        return InventoryError(f"{path}:{line}: {message}")

    while stack:
        node, children = stack[-1]
        if children is None:  # first visit
            if id(node) in done:  # the same shared node twice among one parent's children
                stack.pop()
                continue
            if len(on_path) >= MAX_INVENTORY_DEPTH:
                raise fail(node, f"nested deeper than {MAX_INVENTORY_DEPTH} levels")
            on_path.add(id(node))
            children = _children(node)
            stack[-1] = (node, children)
            # a child already on the path is a recursive alias (``&a {self: *a}``): PyYAML
            # builds it as a self-referencing object, counted here as one node
            pending = [
                c
                for c in children
                if _is_collection(c) and id(c) not in done and id(c) not in on_path
            ]
            stack.extend((child, None) for child in reversed(pending))
            continue
        stack.pop()
        on_path.discard(id(node))
        nodes, height = 1, 0
        for child in children:
            child_nodes, child_height = done.get(id(child), (1, 1))
            nodes += child_nodes
            height = max(height, child_height)
        if height + 1 > MAX_INVENTORY_DEPTH:
            raise fail(node, f"nested deeper than {MAX_INVENTORY_DEPTH} levels")
        if nodes > budget:
            raise fail(node, f"aliases expand to more than {budget} nodes")
        done[id(node)] = (nodes, height + 1)

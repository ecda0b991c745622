"""Build Python data from a composed YAML node tree faster than PyYAML's constructor.

PyYAML's C loader (``CSafeLoader``) parses and composes nodes in C, but turns them into
Python objects with the pure-Python ``SafeConstructor`` (a generator per mapping, memo
and recursion bookkeeping per node): on a 10,000-host inventory that construction is
most of the load time. Plain mappings, sequences and strings -- nearly everything in an
inventory -- are built here directly; every other node (ints, bools, nulls, floats,
timestamps, ``!vault`` and other tags, merge keys ``<<``, complex keys) goes to the
loader's own constructor, so the result equals ``yaml.load`` with the same loader
(tests/unit/test_inventory_fastyaml.py checks that on every test inventory).
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SPECIAL_KEYS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})


def construct(node: Node | None, loader: Any) -> Any:
    """The Python value of ``node`` (from ``loader.get_single_node()``)."""
    if node is None:
        return None
    constructors: dict[Any, Any] = loader.yaml_constructors
    memo: dict[int, Any] = {}  # anchored nodes appear more than once: build them once

    def scalar(node: ScalarNode) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        constructor = constructors.get(tag)
        if constructor is None:
            return loader.construct_object(node, deep=True)  # multi-constructors, errors
        return constructor(loader, node)

    def build(node: Node) -> Any:
        kind = type(node)
        if kind is ScalarNode:
            return scalar(node)  # type: ignore[arg-type]
        done = memo.get(id(node))
        if done is not None:
            return done
        if kind is MappingNode and node.tag == _MAP:
            pairs = node.value
            if all(type(k) is ScalarNode and k.tag not in _SPECIAL_KEYS for k, _ in pairs):
                mapping: dict[Any, Any] = {}
                memo[id(node)] = mapping
                try:
                    for key_node, value_node in pairs:
                        mapping[scalar(key_node)] = build(value_node)
                except TypeError:  # an unhashable key: the loader's constructor says so
                    del memo[id(node)]
                else:
                    return mapping
        elif kind is SequenceNode and node.tag == _SEQ:
            items: list[Any] = []
            memo[id(node)] = items
            items.extend(build(child) for child in node.value)
            return items
        value = loader.construct_object(node, deep=True)  # the general case
        memo[id(node)] = value
        return value

    return build(node)

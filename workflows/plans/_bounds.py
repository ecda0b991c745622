"""Bounds on a plan file, checked on the parser's event stream before anything is built.

A YAML file of a few kilobytes can name an anchor that holds ten aliases of an anchor
that holds ten aliases of ... (a "billion laughs"): composing it is cheap (an alias is
a shared node) but every walk that follows -- ruamel's constructor, :func:`_plain`,
pydantic -- expands it, at exponential cost in time and memory. Deep nesting reaches
Python's recursion limit in ruamel's recursive composer. Both are refused here, on the
events of ruamel's (iterative) parser, with the line where the bound was crossed; the
walk is linear in the file, so a hostile file is refused in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MAX_PLAN_ALIASES", "MAX_PLAN_BYTES", "MAX_PLAN_DEPTH", "MAX_PLAN_NODES", "check"]

MAX_PLAN_BYTES = 1024 * 1024
"""A plan file larger than this (1 MiB) is refused before it is parsed."""
MAX_PLAN_DEPTH = 64
"""Mappings and sequences nested deeper than this are refused."""
MAX_PLAN_ALIASES = 100
"""More alias nodes (``*name``) than this in one plan file are refused."""
MAX_PLAN_NODES = 100_000
"""More nodes than this, counting every alias as the whole node it repeats, are refused."""


def check(text: str, path: Path) -> list[str]:
    """The one located message for the first bound ``text`` crosses, or none."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import (
        AliasEvent,
        CollectionEndEvent,
        CollectionStartEvent,
        ScalarEvent,
    )

    size = len(text.encode("utf-8"))
    if size > MAX_PLAN_BYTES:
        return [f"{path}:1: plan file is {size} bytes; the limit is {MAX_PLAN_BYTES}"]
    sizes: dict[str, int] = {}  # anchor -> expanded node count of its node
    open_: list[tuple[str | None, int]] = []  # (anchor, nodes so far) per open collection
    total = aliases = 0
    try:
        for event in YAML(typ="rt").parse(text):
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            if isinstance(event, CollectionStartEvent):
                if len(open_) >= MAX_PLAN_DEPTH:
                    return [f"{path}:{line}: nested deeper than {MAX_PLAN_DEPTH} levels"]
                open_.append((_anchor(event), 1))
                continue
            if isinstance(event, CollectionEndEvent):
                anchor, count = open_.pop()
                if anchor is not None:
                    sizes[anchor] = count
            elif isinstance(event, AliasEvent):
                aliases += 1
                if aliases > MAX_PLAN_ALIASES:
                    return [f"{path}:{line}: more than {MAX_PLAN_ALIASES} aliases"]
                name = _anchor(event)
                if name is None or name not in sizes:
                    return [f"{path}:{line}: alias *{name} refers to an unfinished anchor"]
                count = sizes[name]
            elif isinstance(event, ScalarEvent):
                count = 1
                anchor = _anchor(event)
                if anchor is not None:
                    sizes[anchor] = 1
            else:
                continue
            if open_:
                top_anchor, top_count = open_[-1]
                open_[-1] = (top_anchor, top_count + count)
            total += count
            if total > MAX_PLAN_NODES:
                return [f"{path}:{line}: aliases expand to more than {MAX_PLAN_NODES} nodes"]
    except YAMLError:
        return []  # the loader reports the syntax error, located
    return []


def _anchor(event: object) -> str | None:
    anchor = getattr(event, "anchor", None)
    if anchor is None:
        return None
    value = getattr(anchor, "value", anchor)
    return None if value is None else str(value)

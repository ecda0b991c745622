"""Reading plans from YAML, with every validation error turned into one located line::

    plans/weekly.yml:14 rings[2].batch: expected a count or a percentage like "25%"

ruamel.yaml's round-trip loader keeps the line numbers; :func:`load_plans` reads a whole
directory, collecting the errors of all files and refusing two files that declare the same
plan ``name:``. :func:`plan_hash` is the SHA-256 of a plan's canonical JSON.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from workflows.backends import BackendCatalog
from workflows.errors import PlanError
from workflows.plans._backends import check_backends
from workflows.plans._bounds import MAX_PLAN_BYTES, check
from workflows.plans._fields import At, render_path
from workflows.plans._model import PatchPlan


def plan_json(plan: PatchPlan) -> str:
    """Canonical JSON of a plan: sorted keys, no spaces. What is stored and hashed.
    An absent ``change:`` section (issue 23) and the backend fields at their defaults
    (issue 19: ``ssh``, no options) are left out, so plans without them keep the hash they
    had before those fields existed."""
    data = plan.model_dump(mode="json")
    if data.get("change") is None:
        data.pop("change", None)
    if data.get("backend") == "ssh":
        data.pop("backend")
    if not data.get("backends"):
        data.pop("backends", None)
    for ring in data.get("rings") or ():
        if isinstance(ring, dict) and ring.get("backend") is None:
            ring.pop("backend", None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def plan_hash(plan: PatchPlan) -> str:
    """SHA-256 (hex) of the plan's canonical JSON."""
    return hashlib.sha256(plan_json(plan).encode()).hexdigest()


@dataclass(frozen=True)
class LoadedPlan:
    path: Path
    plan: PatchPlan
    hash: str


def _line_of(tree: Any, loc: Sequence[str | int]) -> int:
    """1-based line of the deepest node of ``loc`` present in the ruamel tree."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    node = tree
    line = getattr(getattr(tree, "lc", None), "line", 0) or 0
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0]
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0]
            node = node[part]
        else:
            break
    return int(line) + 1


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class whose fields ``loc`` (a path to a field) is one of."""
    model: type[BaseModel] = PatchPlan
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        candidates = [info.annotation, *typing.get_args(info.annotation)]
        for arg in list(candidates):
            candidates.extend(typing.get_args(arg))
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        loc = tuple(error["loc"])
        model = _model_at(loc)
        known = sorted(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "check the spelling"
        return f"unknown field ({hint})"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "timezone_aware":
        return "needs a UTC offset, like 2030-01-02T00:00:00+00:00"
    msg = str(error["msg"])
    if kind in ("literal_error", "enum"):
        return msg.replace("Input should be", "expected", 1) + f", got {error['input']!r}"
    return msg


def _errors(exc: ValidationError) -> Iterator[tuple[tuple[str | int, ...], str]]:
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if error["type"] == "value_error" and isinstance(cause, At):
            for rel, msg in cause.items:
                yield loc + rel, msg
        else:
            yield loc, _message(error)


def _plain(node: Any) -> Any:
    """ruamel's CommentedMap/CommentedSeq/ScalarFloat/TimeStamp... as plain Python."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, dt.datetime):
        return dt.datetime(
            node.year, node.month, node.day, node.hour, node.minute, node.second,
            node.microsecond, tzinfo=node.tzinfo, fold=node.fold,
        )  # fmt: skip
    if isinstance(node, dt.date):
        return dt.date(node.year, node.month, node.day)
    return node


def _read(path: Path) -> tuple[Any, list[str]]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        size = path.stat().st_size
        if size > MAX_PLAN_BYTES:  # refused before it is read into memory
            return None, [f"{path}:1: plan file is {size} bytes; the limit is {MAX_PLAN_BYTES}"]
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot read: {exc}"]
    refused = check(text, path)
    if refused:
        return None, refused
    try:
        return YAML(typ="rt").load(text), []
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return None, [f"{path}:{line}: invalid YAML: {problem}"]
    except YAMLError as exc:
        return None, [f"{path}:1: invalid YAML: {exc}"]


def _located(
    path: Path, tree: Any, problems: Iterator[tuple[tuple[str | int, ...], str]]
) -> list[str]:
    located = [
        (_line_of(tree, loc), f"{path}:{_line_of(tree, loc)} {render_path(loc)}: {msg}")
        for loc, msg in problems
    ]
    located.sort(key=lambda item: item[0])  # stable: same line keeps pydantic's order
    return [text for _, text in located]


def _load(
    path: Path, catalog: BackendCatalog | None = None
) -> tuple[PatchPlan | None, list[str], Any]:
    from ruamel.yaml.comments import CommentedMap

    tree, messages = _read(path)
    if messages:
        return None, messages, None
    if not isinstance(tree, CommentedMap):
        return None, [f"{path}:1: a plan file is a YAML mapping (name:, rings:, ...)"], None
    try:
        plan = PatchPlan.model_validate(_plain(tree))
    except ValidationError as exc:
        return None, _located(path, tree, _errors(exc)), tree
    if catalog is not None:
        problems = check_backends(plan, catalog)
        if problems:
            return None, _located(path, tree, iter(problems)), tree
    return plan, [], tree


def load_plan(path: Path, catalog: BackendCatalog | None = None) -> PatchPlan:
    """Load and validate one plan file; every problem is a located line in PlanError.

    With ``catalog`` (the backends PatchGate has, from ``integrations.backends``), the
    plan's backends are checked too: known names, valid options, and nothing asked of a
    backend that it cannot do. Without it, only the plan's own shape is checked.
    """
    plan, messages, _ = _load(path, catalog)
    if plan is None:
        raise PlanError(messages)
    return plan


def load_plans(directory: Path, catalog: BackendCatalog | None = None) -> dict[str, LoadedPlan]:
    """Every plan in ``directory`` (*.yml, *.yaml) by its ``name:``; all errors at once
    (with ``catalog``, the backends' too, as :func:`load_plan`)."""
    if not directory.is_dir():
        raise PlanError([f"{directory}: not a directory of plans"])
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
    plans: dict[str, LoadedPlan] = {}
    lines: dict[str, int] = {}
    messages: list[str] = []
    for path in files:
        plan, errors, tree = _load(path, catalog)
        messages.extend(errors)
        if plan is None:
            continue
        line = _line_of(tree, ("name",))
        if plan.name in plans:
            other = plans[plan.name].path
            messages.append(
                f"{path}:{line} name: plan name {plan.name!r} is already used by "
                f"{other}:{lines[plan.name]}"
            )
            continue
        plans[plan.name] = LoadedPlan(path=path, plan=plan, hash=plan_hash(plan))
        lines[plan.name] = line
    if messages:
        raise PlanError(messages)
    return plans

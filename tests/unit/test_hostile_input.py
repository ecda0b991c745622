"""Hostile plan, inventory and selector input is refused quickly with a located error.

Each case here broke serve before the bounds existed: a "billion laughs" file took
exponential time and memory (and stalled the event loop), deep nesting raised
RecursionError. The time bounds are loose on purpose (a busy CI machine); the
refusals themselves take milliseconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from integrations.inventory.ansible_model import MAX_GROUP_DEPTH
from integrations.inventory.bounds import MAX_INVENTORY_BYTES, MAX_INVENTORY_DEPTH
from integrations.inventory.csv_inventory import load_csv
from integrations.inventory.sources import load_by_content, load_ini, load_yaml
from workflows.errors import InventoryError, PlanError, SelectorError
from workflows.plans import (
    MAX_PLAN_ALIASES,
    MAX_PLAN_BYTES,
    MAX_PLAN_DEPTH,
    MAX_SELECTOR_DEPTH,
    Not,
    load_plan,
    load_plans,
    parse_selector,
)

SECONDS = 2.0


def laughs(indent: str) -> str:
    """Nine levels of nine aliases each: 9**9 strings once expanded, 1 KB on disk."""
    lines = [f'{indent}a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghij":
        lines.append(f"{indent}{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
        previous = name
    return "\n".join(lines) + "\n"


def refused(call: object, error: type[Exception]) -> str:
    start = time.monotonic()
    with pytest.raises(error) as caught:
        call()  # type: ignore[operator]
    assert time.monotonic() - start < SECONDS
    return str(caught.value)


# --- plans -------------------------------------------------------------------------------


def test_billion_laughs_plan_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yml"
    path.write_text("name: laughs\n" + laughs(""))
    message = refused(lambda: load_plan(path), PlanError)
    assert message.startswith(f"{path}:")
    assert "aliases expand to more than" in message


def test_billion_laughs_plan_in_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "laughs.yml").write_text("name: laughs\n" + laughs(""))
    assert "aliases expand" in refused(lambda: load_plans(tmp_path), PlanError)


def test_too_many_aliases_in_a_plan(tmp_path: Path) -> None:
    path = tmp_path / "aliases.yml"
    items = ", ".join(["*x"] * (MAX_PLAN_ALIASES + 1))
    path.write_text(f"name: a\nx: &x 1\ny: [{items}]\n")
    message = refused(lambda: load_plan(path), PlanError)
    assert f"{path}:3: more than {MAX_PLAN_ALIASES} aliases" in message


@pytest.mark.parametrize("levels", [MAX_PLAN_DEPTH + 1, 5000, 200_000])
def test_deeply_nested_plan_is_refused(tmp_path: Path, levels: int) -> None:
    path = tmp_path / "deep.yml"
    path.write_text("name: deep\nrings: " + "[" * levels + "]" * levels + "\n")
    message = refused(lambda: load_plan(path), PlanError)
    assert f"{path}:2: nested deeper than {MAX_PLAN_DEPTH} levels" in message


def test_block_nesting_in_a_plan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yml"
    body = "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_PLAN_DEPTH + 2))
    path.write_text("name: deep\n" + body)
    assert "nested deeper than" in refused(lambda: load_plan(path), PlanError)


def test_nesting_within_the_bound_is_validated_as_usual(tmp_path: Path) -> None:
    path = tmp_path / "ok.yml"
    path.write_text("name: ok\nx: " + "[" * (MAX_PLAN_DEPTH - 2) + "]" * (MAX_PLAN_DEPTH - 2))
    message = refused(lambda: load_plan(path), PlanError)
    assert "nested deeper" not in message  # pydantic's own errors, located as ever


def test_oversized_plan_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yml"
    path.write_text("name: big\n" + "# padding\n" * (MAX_PLAN_BYTES // 10 + 1))
    message = refused(lambda: load_plan(path), PlanError)
    assert f"{path}:1: plan file is" in message and f"the limit is {MAX_PLAN_BYTES}" in message


# --- selectors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "(" * 5000 + "host:a" + ")" * 5000,
        "not " * 5000 + "host:a",
        "(not " * 3000 + "host:a" + ")" * 3000,
    ],
)
def test_deep_selector_is_an_input_error(text: str) -> None:
    message = refused(lambda: parse_selector(text), SelectorError)
    assert f"deeper than {MAX_SELECTOR_DEPTH} levels" in message


def test_selector_at_the_depth_bound_parses() -> None:
    depth = MAX_SELECTOR_DEPTH
    assert str(parse_selector("(" * depth + "host:a" + ")" * depth)) == "host:a"
    assert isinstance(parse_selector("not " * depth + "host:a"), Not)


# --- inventories -------------------------------------------------------------------------


def test_billion_laughs_inventory_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text("all:\n  vars:\n" + laughs("    ") + "  hosts:\n    h1: {}\n")
    for load in (load_yaml, load_by_content):
        message = refused(lambda load=load: load(path), InventoryError)  # type: ignore[misc]
        assert message.startswith(f"{path}:") and "aliases expand to more than" in message


def test_honest_anchors_and_merge_keys_still_load(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    hosts = "".join(f"    h{i}: {{<<: *defaults, n: {i}}}\n" for i in range(2000))
    path.write_text(
        "all:\n  vars:\n    defaults: &defaults {a: 1, b: [1, 2, 3]}\n  hosts:\n" + hosts
    )
    assert len(load_yaml(path)) == 2000


def test_deeply_nested_inventory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    levels = MAX_INVENTORY_DEPTH + 5
    path.write_text("all:\n  vars:\n    x: " + "[" * levels + "]" * levels + "\n")
    message = refused(lambda: load_yaml(path), InventoryError)
    assert f"{path}:3: nested deeper than {MAX_INVENTORY_DEPTH} levels" in message


def test_deep_alias_chain_counts_the_depth_it_expands_to(tmp_path: Path) -> None:
    lines = ["a0: &a0 [1]"]
    for i in range(1, 3 * MAX_INVENTORY_DEPTH):
        lines.append(f"a{i}: &a{i} [*a{i - 1}]")
    path = tmp_path / "inventory.yml"
    path.write_text("\n".join(lines) + "\n")
    assert "nested deeper than" in refused(lambda: load_yaml(path), InventoryError)


def test_a_chain_of_child_groups_is_refused(tmp_path: Path) -> None:
    lines = ["[g0]", "h1"]
    for i in range(5000):
        lines += [f"[g{i + 1}:children]", f"g{i}"]
    path = tmp_path / "hosts.ini"
    path.write_text("\n".join(lines) + "\n")
    message = refused(lambda: load_ini(path), InventoryError)
    assert f"groups nested deeper than {MAX_GROUP_DEPTH} levels" in message


@pytest.mark.parametrize("name", ["inventory.yml", "hosts.ini", "hosts.csv"])
def test_oversized_inventory_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with path.open("wb") as stream:  # sparse: no 64 MiB written to disk
        stream.truncate(MAX_INVENTORY_BYTES + 1)
    loaders = {"inventory.yml": load_yaml, "hosts.ini": load_ini}
    load = loaders.get(name, lambda p: load_csv(p, {}))
    message = refused(lambda: load(path), InventoryError)
    assert f"{path}:1: inventory file is" in message

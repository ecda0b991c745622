"""Generated hostile YAML -- anchors that repeat anchors, deep nesting, recursive aliases,
fragments of both -- fed to the plan loader and the inventory loaders: only the
documented InputError (PlanError, InventoryError) ever comes out, and never slowly."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.inventory.sources import load_by_content, load_yaml
from tests.fuzz.targets import env_budget, no_hang
from workflows.errors import InputError
from workflows.plans import load_plan

BUDGET = env_budget(150)


@st.composite
def laughs(draw: st.DrawFn) -> str:
    """``levels`` anchors, each a sequence of ``width`` aliases of the one before."""
    levels = draw(st.integers(1, 12))
    width = draw(st.integers(1, 12))
    lines = ["a0: &a0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


@st.composite
def nested(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 3000))
    opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}"), ("[{b: ", "}]")]))
    return "x: " + opener * depth + "1" + closer * depth + "\n"


@st.composite
def block_nested(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 300))
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + f"{'  ' * depth}v\n"


FRAGMENTS = st.sampled_from(
    ["&a ", "*a", "&b [", "*b", "[", "]", "{", "}", ": ", "- ", "\n", "  ", "<<: *a", "x", ","]
)
HOSTILE = st.one_of(
    laughs(),
    nested(),
    block_nested(),
    st.just("a: &r [*r]\n"),
    st.just("a: &r {self: *r, more: [*r, *r]}\n"),
    st.lists(FRAGMENTS, max_size=60).map("".join),
    st.tuples(laughs(), nested()).map("".join),
)


def _plan(tmp: Path, text: str) -> None:
    path = tmp / "plan.yml"
    path.write_text("name: fuzz\n" + text, encoding="utf-8")
    with contextlib.suppress(InputError):
        load_plan(path)


def _inventory(tmp: Path, text: str) -> None:
    path = tmp / "inventory.yml"
    path.write_text("all:\n  vars:\n" + "".join(f"    {line}\n" for line in text.splitlines()))
    for load in (load_yaml, load_by_content):
        with contextlib.suppress(InputError):
            load(path)


def test_hostile_yaml_plan_raises_only_input_error(tmp_path: Path) -> None:
    @settings(settings.get_profile("patchgate-fuzz"), max_examples=BUDGET)
    @given(HOSTILE)
    def run(text: str) -> None:
        with no_hang():
            _plan(tmp_path, text)

    run()


def test_hostile_yaml_inventory_raises_only_input_error(tmp_path: Path) -> None:
    @settings(settings.get_profile("patchgate-fuzz"), max_examples=BUDGET)
    @given(HOSTILE)
    def run(text: str) -> None:
        with no_hang():
            _inventory(tmp_path, text)

    run()

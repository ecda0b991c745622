"""Ring layout: first ring wins, stable samples, excepted hosts, left-out reasons, budgets."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from workflows.engine import NO_SELECTOR, layout_rollout, render_layout, sample_rank
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost


def host(name: str, *groups: str, tags: tuple[str, ...] = ()) -> InventoryHost:
    return InventoryHost(name=name, groups=frozenset(groups), tags=frozenset(tags))


def plan(*rings: dict[str, Any]) -> PatchPlan:
    return PatchPlan.model_validate({"name": "p", "rings": list(rings)})


def fleet() -> list[InventoryHost]:
    hosts = [host("dev-01", "dev"), host("dev-02", "dev"), host("stage-01", "staging")]
    hosts += [host(f"web-{i:02d}", "prod", "web") for i in range(1, 15)]
    hosts += [host(f"db-{i:02d}", "prod", "db", tags=("pci",)) for i in range(1, 7)]
    hosts += [host("orphan")]
    return hosts


CANARY_PLAN = plan(
    {"name": "dev", "hosts": "group:dev", "batch": "50%"},
    {"name": "canary", "hosts": "group:prod", "sample": "10%"},
    {"name": "production", "hosts": "group:prod", "batch": "20%", "failure_budget": "5%"},
)


def test_a_host_belongs_to_the_first_ring_that_selects_it() -> None:
    layout = layout_rollout(
        plan({"name": "pci", "hosts": "tag:pci"}, {"name": "prod", "hosts": "group:prod"}),
        fleet(),
    )
    assert layout.ring("pci").hosts == [f"db-{i:02d}" for i in range(1, 7)]
    assert layout.ring("prod").hosts == [f"web-{i:02d}" for i in range(1, 15)]
    assert layout.ring_of("db-03") == "pci"


def test_a_sampled_ring_takes_the_hosts_ranked_first_by_name_hash() -> None:
    layout = layout_rollout(CANARY_PLAN, fleet())
    prod = sorted(h.name for h in fleet() if "prod" in h.groups)
    expected = sorted(sorted(prod, key=sample_rank)[:2])  # 10% of 20, rounded up
    assert layout.ring("canary").hosts == expected
    assert sorted(layout.ring("production").hosts) == sorted(set(prod) - set(expected))


def test_the_sample_is_the_same_whatever_order_the_inventory_lists_hosts_in() -> None:
    first = layout_rollout(CANARY_PLAN, fleet()).ring("canary").hosts
    for seed in range(5):
        shuffled = fleet()
        random.Random(seed).shuffle(shuffled)
        assert layout_rollout(CANARY_PLAN, shuffled).ring("canary").hosts == first


def test_sample_rank_is_sha256_of_the_host_name() -> None:
    assert sample_rank("web-01") == hashlib.sha256(b"web-01").hexdigest()


def test_batches_are_sorted_by_name_and_sized_by_rounding_up() -> None:
    layout = layout_rollout(CANARY_PLAN, fleet())
    production = layout.ring("production")
    assert production.size == 18
    assert production.batch_size == 4  # 20% of 18 = 3.6, rounded up
    assert [len(b) for b in production.batches] == [4, 4, 4, 4, 2]
    assert [name for batch in production.batches for name in batch] == sorted(production.hosts)
    assert layout.ring("dev").batches == [["dev-01"], ["dev-02"]]


def test_failure_budgets_round_down() -> None:
    layout = layout_rollout(CANARY_PLAN, fleet())
    assert layout.ring("production").failure_budget == 0  # 5% of 18 = 0.9
    bigger = [*fleet(), host("web-15", "prod"), host("web-16", "prod"), host("web-17", "prod")]
    assert layout_rollout(CANARY_PLAN, bigger).ring("production").failure_budget == 1  # 5% of 20+


def test_excepted_hosts_are_listed_in_their_ring_but_not_batched_or_counted() -> None:
    layout = layout_rollout(CANARY_PLAN, fleet(), excepted={"web-10", "db-04", "orphan"})
    production = layout.ring("production")
    assert production.excepted == ["db-04", "web-10"]
    assert "web-10" not in production.hosts
    assert all("web-10" not in batch for batch in production.batches)
    assert production.size == 16
    assert layout.ring_of("web-10") == "production"
    assert layout.left_out["orphan"] == NO_SELECTOR  # an exception does not place a host


def test_left_out_hosts_say_why() -> None:
    layout = layout_rollout(
        plan(
            {"name": "dev", "hosts": "group:dev"},
            {"name": "canary", "hosts": "group:prod", "sample": 2},
            {"name": "db", "hosts": "group:db"},
        ),
        fleet(),
    )
    assert layout.left_out["orphan"] == "matched no ring selector"
    assert layout.left_out["stage-01"] == "matched no ring selector"
    canary = set(layout.ring("canary").hosts)
    web_left = {f"web-{i:02d}" for i in range(1, 15)} - canary
    for name in web_left:
        assert layout.left_out[name] == (
            "not in ring canary's sample of 2 hosts and no later ring selects it"
        )
    assert not set(layout.ring("db").hosts) & canary


def test_a_percentage_sample_is_named_in_the_reason() -> None:
    layout = layout_rollout(
        plan({"name": "canary", "hosts": "group:prod", "sample": "10%"}), fleet()
    )
    assert (
        sorted(layout.left_out.values()).count(
            "not in ring canary's 10% sample and no later ring selects it"
        )
        == 18
    )


def test_a_later_ring_with_no_hosts_is_legal_and_shown_empty() -> None:
    layout = layout_rollout(
        plan({"name": "all", "hosts": "all"}, {"name": "prod", "hosts": "group:prod"}), fleet()
    )
    assert layout.ring("prod").hosts == []
    assert layout.ring("prod").batches == []
    assert "Ring 2/2 prod (group:prod; no gate): no hosts" in render_layout(layout)


def test_the_dry_run_text_shows_rings_batches_excepted_and_left_out() -> None:
    layout = layout_rollout(CANARY_PLAN, fleet(), excepted={"web-10"})
    text = render_layout(layout)
    lines = text.splitlines()
    assert lines[0] == (
        "Ring 1/3 dev (group:dev; no gate): 2 hosts in 2 batches of up to 1, failure budget 0"
    )
    assert lines[1] == "  batch 1: dev-01"
    assert "  excepted (not patched): web-10" in lines
    assert lines[-3:] == [
        "Left out (2 hosts):",
        "  orphan: matched no ring selector",
        "  stage-01: matched no ring selector",
    ]


def test_the_layout_serialises_to_json() -> None:
    data = layout_rollout(CANARY_PLAN, fleet()).to_json()
    assert [r["name"] for r in data["rings"]] == ["dev", "canary", "production"]
    assert data["rings"][0]["batches"] == [["dev-01"], ["dev-02"]]
    assert data["rings"][2]["failure_budget"] == 0
    assert data["left_out"] == {"orphan": NO_SELECTOR, "stage-01": NO_SELECTOR}


def test_duplicate_host_names_are_refused() -> None:
    with pytest.raises(ValueError, match="web-01"):
        layout_rollout(CANARY_PLAN, [host("web-01", "prod"), host("web-01", "prod")])

"""Ring layout: which hosts each ring takes, in which batches, with which failure budget.

Pure: a plan and the inventory's hosts in, a :class:`RolloutLayout` out. The engine
uses it to create a rollout's rings and host rows; the dry run prints it.

Rules:

- Rings are visited in order. A ring's *candidates* are the hosts its selector matches
  that no earlier ring took. A host belongs to the first ring that takes it.
- A ring with ``sample`` takes only a stable sample of its candidates: they are ranked
  by SHA-256 of the host name and the first ``sample.sample_of(len(candidates))`` are
  taken. The same hosts are chosen every run, whatever order the inventory lists
  them in. Candidates left out of the sample stay available to later rings (so a
  canary of ``group:prod`` with ``sample: 10%`` followed by a ``group:prod`` ring splits
  prod 10/90).
- Hosts with an exception (``excepted``) that a ring takes are shown in that ring as
  excepted: they are not batched and do not count in the ring's size.
- Batches: the ring's hosts sorted by name, in chunks of ``batch.batch_of(size)``.
  Failure budget: ``failure_budget.budget_of(size)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from workflows.plans import GateSpec, PatchPlan, format_duration
from workflows.ports import InventoryHost

__all__ = ["RingLayout", "RolloutLayout", "layout_rollout", "render_layout", "sample_rank"]

NO_SELECTOR = "matched no ring selector"


def sample_rank(host_name: str) -> str:
    """The stable key by which sampled rings rank their candidates."""
    return hashlib.sha256(host_name.encode("utf-8")).hexdigest()


def _gate_text(gate: GateSpec) -> str:
    if gate.type == "auto":
        return f"auto gate after a {format_duration(gate.soak)} soak"
    if gate.type == "approval":
        return f"approval gate (quorum {gate.quorum})"
    return "no gate"


@dataclass(frozen=True)
class RingLayout:
    name: str
    position: int  # 0-based, as in the plan
    selector: str
    sample: str | None
    gate: str
    hosts: list[str]  # sorted by name; excepted hosts are not here
    excepted: list[str]
    batches: list[list[str]]
    batch_size: int
    failure_budget: int

    @property
    def size(self) -> int:
        return len(self.hosts)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "position": self.position,
            "selector": self.selector,
            "sample": self.sample,
            "gate": self.gate,
            "hosts": list(self.hosts),
            "excepted": list(self.excepted),
            "batches": [list(batch) for batch in self.batches],
            "batch_size": self.batch_size,
            "failure_budget": self.failure_budget,
        }


@dataclass(frozen=True)
class RolloutLayout:
    rings: list[RingLayout]
    left_out: dict[str, str] = field(default_factory=dict)  # host -> why no ring took it

    def ring(self, name: str) -> RingLayout:
        for ring in self.rings:
            if ring.name == name:
                return ring
        raise KeyError(name)

    def ring_of(self, host: str) -> str | None:
        """The ring that took the host (also when it is excepted there), if any."""
        for ring in self.rings:
            if host in ring.hosts or host in ring.excepted:
                return ring.name
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "rings": [ring.to_json() for ring in self.rings],
            "left_out": dict(sorted(self.left_out.items())),
        }


def _chunks(names: Sequence[str], size: int) -> list[list[str]]:
    return [list(names[i : i + size]) for i in range(0, len(names), size)]


def layout_rollout(
    plan: PatchPlan, hosts: Sequence[InventoryHost], *, excepted: Collection[str] = ()
) -> RolloutLayout:
    """Place every host in its ring and batch, or say why it is left out."""
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"hosts listed more than once: {', '.join(duplicates)}")
    excepted_set = frozenset(excepted)
    taken: set[str] = set()
    passed_over: dict[str, str] = {}  # host -> the first sampled ring that did not take it
    rings: list[RingLayout] = []

    for position, spec in enumerate(plan.rings):
        candidates = [h for h in hosts if h.name not in taken and spec.hosts.matches(h)]
        if spec.sample is not None:
            sample = (
                f"{spec.sample} sample"
                if spec.sample.percent is not None
                else f"sample of {_plural(spec.sample.count or 0, 'host')}"
            )
            ranked = sorted(candidates, key=lambda h: (sample_rank(h.name), h.name))
            chosen = ranked[: spec.sample.sample_of(len(ranked))]
            chosen_names = {h.name for h in chosen}
            for host in candidates:
                if host.name not in chosen_names:
                    passed_over.setdefault(host.name, f"not in ring {spec.name}'s {sample}")
        else:
            chosen = candidates
        members = sorted(h.name for h in chosen)
        taken.update(members)
        ring_hosts = [n for n in members if n not in excepted_set]
        batch_size = spec.batch.batch_of(len(ring_hosts))
        rings.append(
            RingLayout(
                name=spec.name,
                position=position,
                selector=str(spec.hosts),
                sample=str(spec.sample) if spec.sample is not None else None,
                gate=_gate_text(spec.gate),
                hosts=ring_hosts,
                excepted=[n for n in members if n in excepted_set],
                batches=_chunks(ring_hosts, batch_size),
                batch_size=batch_size,
                failure_budget=spec.failure_budget.budget_of(len(ring_hosts)),
            )
        )

    left_out = {
        name: (
            f"{passed_over[name]} and no later ring selects it"
            if name in passed_over
            else NO_SELECTOR
        )
        for name in sorted(names)
        if name not in taken
    }
    return RolloutLayout(rings=rings, left_out=left_out)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def render_layout(layout: RolloutLayout) -> str:
    """The dry run as text: ring by ring, batch by batch, then the hosts left out."""
    lines: list[str] = []
    total = len(layout.rings)
    for ring in layout.rings:
        sample = f", sample {ring.sample}" if ring.sample else ""
        head = (
            f"Ring {ring.position + 1}/{total} {ring.name} ({ring.selector}{sample}; {ring.gate})"
        )
        if not ring.hosts:
            lines.append(f"{head}: no hosts")
        else:
            batches = _plural(len(ring.batches), "batch", "batches")
            lines.append(
                f"{head}: {_plural(ring.size, 'host')} in {batches}"
                f" of up to {ring.batch_size}, failure budget {ring.failure_budget}"
            )
            for number, batch in enumerate(ring.batches, start=1):
                lines.append(f"  batch {number}: {', '.join(batch)}")
        if ring.excepted:
            lines.append(f"  excepted (not patched): {', '.join(ring.excepted)}")
    if layout.left_out:
        lines.append(f"Left out ({_plural(len(layout.left_out), 'host')}):")
        lines.extend(f"  {name}: {why}" for name, why in sorted(layout.left_out.items()))
    else:
        lines.append("Every host is in a ring.")
    return "\n".join(lines)

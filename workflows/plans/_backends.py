"""A plan's backends against the catalog of the backends PatchGate has: every name is
known, each backend's options pass its own check, and nothing the plan asks for is
beyond what the backend declares it can do (automatic rollback, reboots, health checks,
the ``tool`` health check: the backend's own host status).

Pure: the catalog's declarations answer from the options alone, without I/O.
"""

from __future__ import annotations

from workflows.backends import BackendCatalog, Capabilities
from workflows.plans._model import PatchPlan

Problem = tuple[tuple[str | int, ...], str]


def check_backends(plan: PatchPlan, catalog: BackendCatalog) -> list[Problem]:
    """Every problem with the plan's backends, each at the field that causes it."""
    problems: list[Problem] = []
    known = ", ".join(sorted(catalog)) or "none"

    def where(name: str) -> tuple[str | int, ...]:
        """Where a backend is chosen: the plan's field, else a ring's, else its options."""
        if name == plan.backend:
            return ("backend",)
        for index, ring in enumerate(plan.rings):
            if ring.backend == name:
                return ("rings", index, "backend")
        return ("backends", name)

    capabilities: dict[str, Capabilities] = {}
    for name in sorted(plan.configured_backends()):
        declaration = catalog.get(name)
        if declaration is None:
            problems.append((where(name), f"unknown backend {name!r} (known: {known})"))
            continue
        options = plan.backend_options(name)
        bad = list(declaration.check_options(options))
        problems.extend((("backends", name), line) for line in bad)
        if not bad:
            capabilities[name] = declaration.capabilities(options)
    for name, caps in sorted(capabilities.items()):
        problems.extend((where(name), line) for line in _beyond(plan, name, caps))
        if not caps.status:
            problems.extend(_tool_checks_without_status(plan, name))
    return problems


def _tool_checks_without_status(plan: PatchPlan, name: str) -> list[Problem]:
    """A ``tool`` health check in a ring whose backend reports no host status, at the
    check (the ring's own list, else the plan's)."""
    problems: list[Problem] = []
    for index, ring in enumerate(plan.rings):
        if plan.backend_for(ring) != name:
            continue
        own = ring.health_checks is not None
        for position, check in enumerate(plan.checks_for(ring)):
            if check.type != "tool":
                continue
            at: tuple[str | int, ...] = (
                ("rings", index, "health_checks", position) if own else ("health_checks", position)
            )
            problems.append(
                (
                    at,
                    f"ring {ring.name}: check {check.name!r} is a tool check, but backend "
                    f"{name!r} reports no host status of its own: remove the check or patch "
                    "the ring with a backend that does (satellite, automox)",
                )
            )
    return problems


def _beyond(plan: PatchPlan, name: str, caps: Capabilities) -> list[str]:
    """What the plan asks of backend ``name`` that it cannot do."""
    lines: list[str] = []
    wanted = [
        field
        for field in ("on_patch_failure", "on_health_failure", "ring_on_budget_exceeded")
        if getattr(plan.rollback, field)
    ]
    if plan.rollback.on_abort:
        wanted.append("on_abort")
    if wanted and not caps.rollback:
        lines.append(
            f"backend {name!r} cannot roll back, but rollback asks for "
            f"{', '.join(wanted)}: set rollback: none (or turn those off)"
        )
    if plan.reboot != "never" and not caps.reboot and not caps.reboots_itself:
        lines.append(
            f"backend {name!r} cannot reboot hosts, but reboot is {plan.reboot!r}: set "
            "reboot: never, or have the backend's own job reboot (see its options)"
        )
    if not caps.health:
        users = [
            ring.name
            for ring in plan.rings
            if plan.backend_for(ring) == name
            and any(c.type != "tool" for c in plan.checks_for(ring))
        ]
        if users:
            lines.append(
                f"backend {name!r} cannot run PatchGate's health checks, but ring(s) "
                f"{', '.join(users)} have some: give those rings health_checks: [] (or only "
                "tool checks)"
            )
    return lines

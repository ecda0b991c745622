"""A device's result from NinjaOne's install records (``/v2/queries/os-patch-installs``):
each pinned patch INSTALLED, FAILED, or not yet recorded, and any patch installed that
was not pinned (the apply endpoint installs whatever is approved; a policy changed
between ``submit``'s check and the apply would show here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from integrations.backends.ninjaone.devices import Patch
from workflows.backends import HostOutcome


@dataclass(frozen=True)
class Verdict:
    outcome: HostOutcome | None  # None: some pinned patch has no record yet
    missing: tuple[str, ...] = ()


def judge(host: str, pinned: Sequence[str], records: Sequence[Patch]) -> Verdict:
    installed: dict[str, Patch] = {}
    failed: dict[str, Patch] = {}
    for rec in sorted(records, key=lambda r: r.installed_at or 0.0):
        if rec.status == "INSTALLED":
            installed[rec.key] = rec
            failed.pop(rec.key, None)
        elif rec.status == "FAILED" and rec.key not in installed:
            failed[rec.key] = rec
    wanted = set(pinned)
    extra = sorted(set(installed) - wanted)
    after: dict[str, str | None] = {k: k for k in sorted(wanted & set(installed))}
    if extra:
        return Verdict(
            HostOutcome(
                host=host,
                status="failed",
                after=after,
                failed_task="unpinned patches installed",
                output="NinjaOne also installed " + ", ".join(extra) + ", which were not"
                " pinned (they were approved after PatchGate checked the device's approved"
                " patches)",
            )
        )
    missing = tuple(sorted(wanted - set(installed) - set(failed)))
    if missing:
        return Verdict(None, missing)
    if failed:
        why = "; ".join(f"{k}: {failed[k].name}" for k in sorted(wanted & set(failed)))
        return Verdict(
            HostOutcome(
                host=host,
                status="failed",
                after=after,
                failed_task="os patch install",
                output=f"NinjaOne reports the install FAILED for {why}",
            )
        )
    return Verdict(
        HostOutcome(
            host=host,
            status="applied",
            after=after,
            output="NinjaOne reports INSTALLED: " + ", ".join(sorted(after)),
        )
    )

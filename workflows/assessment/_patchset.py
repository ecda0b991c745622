"""The pinned patch set: per platform, the exact package -> version map, and its hash.

Built at assessment from the package manager's simulation (so new dependencies are
included); a set that would remove packages is refused. The hash (SHA-256 over sorted
canonical JSON) is shown at every gate and bound to every approval.

What is simulated: with fresh stored assessments, the fixes the plan's baseline selects
(:func:`workflows.assessment.baseline_for`) at their assessed versions; without them, the
packages :func:`select_packages` takes from a host's upgradable list (see the engine's
``_pin``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workflows.errors import Conflict
from workflows.hostos import patch_label
from workflows.plans import PackageSelection
from workflows.ports import PatchIdentity, Simulation, UpgradablePackage

# platform -> name -> PatchIdentity.to_json(), for the pinned entries that are updates
Updates = Mapping[str, Mapping[str, Mapping[str, str]]]


def patchset_hash(patchset: Mapping[str, Mapping[str, str]], updates: Updates | None = None) -> str:
    """SHA-256 over the set's canonical JSON (sorted keys, no spaces, UTF-8).

    A set of packages only hashes exactly as before updates existed. A set with vendor
    updates (``updates``: their identities, :func:`update_identities`) hashes
    ``{"format": 2, "packages": <the set>, "updates": <identities>}``: a KB's title or
    catalog id is part of what an approval was given for, and no set of packages (whose
    top level maps platforms to objects) has the same canonical text.
    """
    body: dict[str, object] = {p: dict(sorted(v.items())) for p, v in sorted(patchset.items())}
    kept = {p: {n: dict(i) for n, i in v.items()} for p, v in (updates or {}).items() if v}
    if kept:
        body = {"format": 2, "packages": body, "updates": kept}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def update_identities(
    patchset: Mapping[str, Mapping[str, str]],
    identities: Mapping[str, Mapping[str, tuple[str, PatchIdentity]]],
) -> dict[str, dict[str, dict[str, str]]]:
    """The identities of the pinned entries that are vendor updates, per platform.

    ``identities``: platform -> name -> (the version it was assessed at, its identity);
    an entry is kept only when the set pins that very version (a package the
    simulation added, or pinned at another version, has no identity)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for platform, packages in sorted(patchset.items()):
        known = identities.get(platform, {})
        for name, version in sorted(packages.items()):
            found = known.get(name)
            if found is not None and found[0] == version and found[1].kind == "update":
                out.setdefault(platform, {})[name] = found[1].to_json()
    return out


def select_packages(
    upgradable: Sequence[UpgradablePackage], selection: PackageSelection
) -> list[str]:
    """Names of the upgradable packages the plan's package selection takes."""
    return sorted(
        p.name for p in upgradable if selection.selects(p.name, security=p.security, severity=None)
    )


@dataclass(frozen=True)
class PlatformSet:
    platform: str
    packages: dict[str, str]


def pin(platform: str, simulation: Simulation) -> PlatformSet:
    """Turn a simulation into the pinned set for one platform; refuse removals."""
    if simulation.removes:
        raise Conflict(
            f"{platform}: the patch set would remove packages "
            f"({', '.join(sorted(simulation.removes))}); refused"
        )
    return PlatformSet(platform, dict(sorted(simulation.installs.items())))


def describe(
    patchset: Mapping[str, Mapping[str, str]], *, limit: int = 12, updates: Updates | None = None
) -> str:
    lines = []
    for platform, packages in sorted(patchset.items()):
        known = (updates or {}).get(platform, {})
        items = [patch_label(n, v, known.get(n)) for n, v in sorted(packages.items())]
        shown = ", ".join(items[:limit]) + (
            f", … (+{len(items) - limit})" if len(items) > limit else ""
        )
        lines.append(f"{platform}: {shown or 'nothing to install'}")
    return "\n".join(lines)

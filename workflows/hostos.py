"""Windows and macOS hosts (issue 21): which OS family a host is, which health checks
make sense on it, and how a vendor update (a KB, a catalog entry) is named to people.

A host's family comes from its inventory (``patchgate_os_family``, set by hand or by a
fleet tool's inventory import, with ``patchgate_os_build``), else from its last facts
(``hosts.os_family``), else it is ``linux`` (every host before Windows and macOS existed).

``command`` and ``systemd`` checks run on the host over SSH: they make no sense on a
Windows or macOS device patched through a fleet tool. A rollout whose ring has such a
check is refused at its layout, before any host is touched, when the inventory names a
host of that ring ``windows``/``macos`` (:func:`check_problems`); when only the host's
facts say so, the check is not run and fails on that host naming why
(:func:`unfit_check`). ``http``, ``tcp`` and the tool's own device status work for every
family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from workflows.ports import OS_BUILD_VAR, OS_FAMILIES, OS_FAMILY_VAR, InventoryHost, OsFamily

# The words accepted for each family (a tool's own spelling, any case).
_FAMILY_WORDS: dict[str, OsFamily] = {
    "linux": "linux",
    "windows": "windows",
    "win": "windows",
    "win32": "windows",
    "microsoft windows": "windows",
    "macos": "macos",
    "mac": "macos",
    "mac os x": "macos",
    "macosx": "macos",
    "osx": "macos",
    "darwin": "macos",
}
# Checks that run on the host itself, over SSH.
HOST_ONLY_CHECKS = frozenset({"command", "systemd"})


def family_word(value: object) -> OsFamily:
    """A family named in an inventory or by a tool, as PatchGate's word; ValueError when
    it names none of linux, windows, macos."""
    if isinstance(value, str):
        found = _FAMILY_WORDS.get(" ".join(value.strip().lower().split()))
        if found is not None:
            return found
    raise ValueError(f"{OS_FAMILY_VAR} must be one of {', '.join(OS_FAMILIES)}, got {value!r}")


def inventory_family(host: InventoryHost) -> OsFamily | None:
    """The family the host's inventory names (None: it names none, or an unknown word,
    which the inventory loader refuses for the files it reads)."""
    value = host.vars.get(OS_FAMILY_VAR)
    if value in (None, ""):
        return None
    try:
        return family_word(value)
    except ValueError:
        return None


def inventory_build(host: InventoryHost) -> str | None:
    value = host.vars.get(OS_BUILD_VAR)
    return None if value in (None, "") else str(value).strip() or None


def host_family(host: InventoryHost, recorded: str | None = None) -> OsFamily:
    """The host's family: its inventory's word, else its last facts', else linux."""
    found = inventory_family(host)
    if found is not None:
        return found
    if recorded in OS_FAMILIES:
        return recorded
    return "linux"


def unfit_check(family: str, check: Any) -> str | None:
    """Why a plan's health check cannot run on a host of this family (None: it can)."""
    kind = str(getattr(check, "type", ""))
    if family in ("windows", "macos") and kind in HOST_ONLY_CHECKS:
        return (
            f"a {kind} check runs on the host over SSH and cannot run on a {family} host; "
            "use http, tcp or tool checks for it"
        )
    return None


def check_problems(
    hosts: Iterable[tuple[str, InventoryHost]], checks_of: Callable[[str], Sequence[Any]]
) -> list[str]:
    """Why a rollout cannot start: a ring's ``command``/``systemd`` check on a host the
    inventory names windows or macos. ``hosts``: (ring, host); ``checks_of(ring)``: the
    ring's checks (``PatchPlan.checks_for``). One line per ring and family."""
    seen: dict[tuple[str, str, str], list[str]] = {}  # (ring, family, checks) -> hosts
    for ring, host in hosts:
        family = inventory_family(host)
        if family in (None, "linux"):
            continue
        bad = [c for c in checks_of(ring) if unfit_check(str(family), c)]
        if bad:
            checks = ", ".join(f"{c.type} check {c.name!r}" for c in bad)
            seen.setdefault((ring, str(family), checks), []).append(host.name)
    problems = []
    for (ring, kind, checks), names in sorted(seen.items()):
        shown = ", ".join(names[:5]) + (f" (+{len(names) - 5})" if len(names) > 5 else "")
        problems.append(
            f"ring {ring}: its {checks} cannot run on {kind} host(s) {shown} "
            "(they run over SSH); give the ring http, tcp or tool checks"
        )
    return problems


def split_checks(family: str, checks: Sequence[Any]) -> tuple[list[Any], dict[int, str]]:
    """The checks to run on a host of this family, and the others by position with why
    they are not run (each one a failed result on the host)."""
    run: list[Any] = []
    refused: dict[int, str] = {}
    for i, check in enumerate(checks):
        why = unfit_check(family, check)
        if why is None:
            run.append(check)
        else:
            refused[i] = why
    return run, refused


def os_label(
    family: str | None, os_id: str | None, os_version: str | None, build: str | None = None
) -> str:
    """How a host's OS is shown: ``ubuntu 22.04`` for a Linux host (as always);
    ``windows 10.0.22631 build 22631.3007``, ``macos 14.2 build 23C64`` otherwise (the
    family first when the facts' os id is not the family's own word)."""
    text = f"{os_id or ''} {os_version or ''}".strip()
    if family in ("windows", "macos"):
        if not (os_id or "").lower().startswith(family):
            text = f"{family} {text}".strip()
        if build and build != os_version:
            text += f" build {build}"
    return text


def patch_label(name: str, version: str, identity: Mapping[str, str] | None = None) -> str:
    """How one pinned entry is shown: ``name=version`` for a package; for a vendor update
    its KB (or catalog id) and title, ``KB5034441 — 2024-01 Cumulative Update for …``."""
    if not identity or identity.get("kind") != "update":
        return f"{name}={version}"
    head = identity.get("kb") or identity.get("catalog_id") or name
    title = identity.get("title")
    text = f"{head} — {title}" if title else head
    if version not in (head, name, identity.get("catalog_id")):
        text += f" ({version})"
    if identity.get("classification"):
        text += f" [{identity['classification']}]"
    return text

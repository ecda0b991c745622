"""Advisories from the hosts themselves: dnf/yum updateinfo and zypper patches.

Pure command builders and parsers (as in ``integrations.packages``); the executor runs
the commands (:func:`read_host_advisories` takes its runner) and records.py turns the
:class:`~workflows.ports.HostAdvisory` values into the assessment's advisory records.

dnf / yum (one command, a constant ``sh -c`` script, the program as its argument):

- dnf5 (``dnf5`` on the host and the family is dnf): ``dnf5 -q advisory list --json
  --security`` (``name``, ``severity``, ``nevra``, ``buildtime``: an ISO string before
  dnf5 5.3, UNIX seconds since) and the same ``--with-cve`` (``advisory_name``,
  ``nevra``, ``references`` with ``reference_id``/``reference_type``). A dnf5 without
  ``--json`` gets the plain tables (``Name Type Severity Package Issued``; with
  ``--with-cve`` the first column is the CVE).
- dnf4 and yum: ``updateinfo list --security`` (``ID Severity/Sec. NEVRA``: the packages
  and their fixed versions) and ``updateinfo info --security`` (per ``Update ID``: the
  ``CVEs``, ``Updated``/``Issued`` and ``Severity`` fields, continuation lines
  ``           : value``; CVE ids in ``Bugs`` titles count when there is no ``CVEs``).

Each part of the output follows a marker line ``@@patchgate:<part>`` so one SSH round
trip serves both listings. zypper needs two: ``--xmlout list-patches --category
security`` (patch name, severity, ``issue-date``, ``issue-list`` CVEs) names no
packages, so ``info -t patch NAME…`` follows, whose ``Conflicts`` list
(``libopenssl3.x86_64 < 3.0.8-150500.5.17.1``) gives the packages and fixed versions.

Severities are mapped to PatchGate's words (Important -> high, Moderate -> medium);
``None``/``unknown``/``unspecified`` become no severity. Lines not understood are
reported in ``Parsed.unparsed``, never dropped silently.

The formats come from the tools' documentation and sources, their own test suites'
captured outputs, and the captures under ``tests/fixtures/hostdata/``; there are no
RHEL, Fedora or SUSE hosts in the lab to run them against.

The dnf/yum builder and parser live in updateinfo.py, zypper's in zypper_patches.py,
what both share in hostcommon.py; this module runs them (:func:`read_host_advisories`)
and is where callers import them from.
"""

from __future__ import annotations

from collections.abc import Callable

from integrations.advisories.hostcommon import severity_word
from integrations.advisories.updateinfo import MARK, dnf_command, parse_dnf
from integrations.advisories.zypper_patches import (
    parse_zypper_patch_info,
    parse_zypper_patches,
    zypper_patch_info_command,
    zypper_patches_command,
)
from integrations.packages.base import Command, CommandOutput, Parsed
from workflows.ports import HostAdvisory

__all__ = [
    "MARK",
    "Run",
    "dnf_command",
    "parse_dnf",
    "parse_zypper_patch_info",
    "parse_zypper_patches",
    "read_host_advisories",
    "severity_word",
    "zypper_patch_info_command",
    "zypper_patches_command",
]


Run = Callable[[Command, str], CommandOutput]


def read_host_advisories(manager: str, run: Run) -> Parsed[list[HostAdvisory]]:
    """The host's security advisories through ``run`` (the executor's checked runner:
    command, what -> output); none for apt (its advisories come from the OSV feed)."""
    if manager in ("dnf", "dnf5", "yum"):
        return parse_dnf(run(dnf_command(manager), "list advisories"))
    if manager != "zypper":
        return Parsed([])
    patches = parse_zypper_patches(run(zypper_patches_command(), "list patches"))
    if not patches.value:
        return patches
    info = parse_zypper_patch_info(
        run(zypper_patch_info_command([p.id for p in patches.value]), "patch info")
    )
    merged = [
        HostAdvisory(
            id=p.id,
            packages=dict(sorted(info.value.get(p.id, {}).items())),
            cves=p.cves,
            severity=p.severity,
            published=p.published,
        )
        for p in patches.value
    ]
    missing = [p.id for p in merged if not p.packages]
    notes = [*patches.notes, *info.notes]
    if missing:
        notes.append(f"no packages named for {', '.join(missing)}")
    return Parsed(merged, [*patches.unparsed, *info.unparsed], notes)

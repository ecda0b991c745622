"""Parsers of apt and dpkg output, for the apt driver (apt.py), which checks the exit
code before handing the output over.

``apt-get -s`` prints one ``Inst``/``Remv``/``Conf`` line per package; ``apt list
--upgradable`` one ``NAME/SUITE CANDIDATE ARCH [upgradable from: CURRENT]`` line. A
security update is one from an origin whose suite ends in ``-security``. Lines not
understood are returned in ``Parsed.unparsed``, never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from integrations.packages import common, grammar
from integrations.packages.base import CommandOutput, Parsed, RebootStatus
from integrations.packages.versions import compare_debian
from workflows.errors import InputError
from workflows.ports import Simulation, UpgradablePackage

# Inst NAME [CURRENT] (CANDIDATE ORIGIN[, ORIGIN...] [ARCH]) [extra]
_INST = re.compile(
    r"Inst (?P<name>\S+)(?: \[(?P<cur>[^\]]*)\])? \((?P<new>\S+)(?: (?P<origins>.*?))?"
    r" \[(?P<arch>[^\]]+)\]\)(?: \[.*\])?"
)
_REMV = re.compile(r"Remv (?P<name>\S+)(?: \[(?P<cur>[^\]]*)\])?(?: \[.*\])?")
_CONF = re.compile(r"Conf \S+ \(.*")
# apt list --upgradable: NAME/SUITE[,SUITE] CANDIDATE ARCH [upgradable from: CURRENT]
_LIST = re.compile(
    r"(?P<name>[^/\s]+)/(?P<suites>\S+) (?P<new>\S+) (?P<arch>\S+)"
    r" \[upgradable from: (?P<cur>[^\]]+)\]"
)
_NOISE = re.compile(
    r"(NOTE: This is only a simulation!|apt-get needs root privileges|Keep also in mind that"
    r"|so don't depend on the relevance|Reading package lists|Building dependency tree"
    r"|Reading state information|Calculating upgrade|Listing\.\.\.|\d+ upgraded, \d+ newly"
    r"|WARNING: apt does not have a stable CLI|Done$|The following .*:$"
    r"|Need to get |After this operation|W: |N: |E: |Selected version "
    r"|Some packages could not be installed|Not upgrading yet due to phasing"
    r"|Skipping .*, it is already installed|Note, selecting |Use '.*' to remove)"
)
_BLOCK = re.compile(r"The following (?:packages have been kept back|upgrades have been deferred)")


def is_security_origin(origin: str) -> bool:
    """``bookworm-security``, ``Debian-Security:12/stable-security``, ``jammy-security``."""
    suite = origin.strip().rsplit("/", 1)[-1]
    return suite.endswith("-security") or suite.endswith("/updates")


def grammar_ok(name: str) -> bool:
    try:
        grammar.debian_package(name)
    except InputError:
        return False
    return True


def parse_upgradable(stdout: str) -> Parsed[list[UpgradablePackage]]:
    """``apt-get -s dist-upgrade`` or ``apt list --upgradable`` output."""
    packages: list[UpgradablePackage] = []
    unparsed: list[str] = []
    notes: list[str] = []
    block: str | None = None
    seen: set[str] = set()
    for line in common.lines(stdout):
        if not line.strip():
            block = None
            continue
        if line.startswith("  "):  # a package list under a heading (Inst lines repeat it)
            if block is not None:
                notes.extend(f"{block}: {pkg}" for pkg in line.split())
            continue
        block = None
        if m := _INST.fullmatch(line):
            origins = [o.strip() for o in (m["origins"] or "").split(",") if o.strip()]
            packages.append(
                UpgradablePackage(
                    name=m["name"],
                    current=m["cur"] or None,
                    candidate=m["new"],
                    security=any(map(is_security_origin, origins)),
                    source=", ".join(origins) or None,
                )
            )
        elif m := _LIST.fullmatch(line):
            suites = m["suites"].split(",")
            name = m["name"] if m["name"] not in seen else f"{m['name']}:{m['arch']}"
            seen.add(m["name"])
            packages.append(
                UpgradablePackage(
                    name=name,
                    current=m["cur"],
                    candidate=m["new"],
                    security=any(map(is_security_origin, suites)),
                    source=",".join(suites),
                )
            )
        elif m := _REMV.fullmatch(line):
            notes.append(f"would remove: {m['name']}")
        elif _BLOCK.match(line):
            block = "kept back" if "kept back" in line else "deferred (phasing)"
        elif _CONF.fullmatch(line) or _NOISE.match(line):
            continue
        else:
            unparsed.append(line)
    return Parsed(packages, unparsed, notes)


def parse_installed(out: CommandOutput, packages: Sequence[str]) -> Parsed[dict[str, str | None]]:
    """``dpkg-query -W`` lines (package, version, status); unknown names stay None."""
    wanted = list(packages)
    found: dict[str, str | None] = dict.fromkeys(wanted)
    unparsed: list[str] = []
    for line in common.lines(out.stdout):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            unparsed.append(line)
            continue
        pkg, version, status = parts
        key = pkg if pkg in found else pkg.split(":", 1)[0]
        if key not in found and not wanted:
            found[key] = None
        if key not in found:
            unparsed.append(line)
            continue
        # status: desired, current, error flag; n = not-installed, c = config-files only
        present = len(status) >= 2 and status[1] not in "nc" and version
        found[key] = version if present else None
    for line in common.lines(out.stderr):
        if line.strip() and "no packages found matching" not in line:
            unparsed.append(line)
    return Parsed(found, unparsed)


def parse_simulation(stdout: str) -> Parsed[Simulation]:
    """``apt-get -s install``: what it would install (and at which version) or remove."""
    installs: dict[str, str] = {}
    removes: list[str] = []
    unparsed: list[str] = []
    notes: list[str] = []
    for line in common.lines(stdout):
        if not line.strip() or line.startswith("  "):
            continue
        if m := _INST.fullmatch(line):
            installs[m["name"]] = m["new"]
        elif m := _REMV.fullmatch(line):
            removes.append(m["name"])
        elif _CONF.fullmatch(line) or _NOISE.match(line) or _BLOCK.match(line):
            continue
        else:
            unparsed.append(line)
    return Parsed(Simulation(installs=installs, removes=tuple(removes)), unparsed, notes)


def parse_unavailable(stdout: str, patchset: Mapping[str, str]) -> Parsed[list[str]]:
    """``name=version`` of the pins apt cannot find (compared as dpkg does)."""
    offered: dict[str, list[str]] = {}
    unparsed: list[str] = []
    current: str | None = None
    for line in common.lines(stdout):
        if line.startswith("@ "):
            current = line[2:].strip()
            offered.setdefault(current, [])
        elif line.startswith("V ") and current is not None:
            offered[current].append(line[2:].strip())
        elif line.strip():
            unparsed.append(line)
    missing = [
        f"{name}={pin}"
        for name, pin in sorted(patchset.items())
        if not any(compare_debian(pin, v) == 0 for v in offered.get(name, []))
    ]
    return Parsed(missing, unparsed)


def parse_reboot(stdout: str) -> Parsed[RebootStatus]:
    """The reboot-required marker and the packages that asked for it."""
    text = common.lines(stdout)
    required = any("restart required" in line for line in text)
    pkgs = tuple(
        line.strip()
        for line in text
        if line.strip() and "restart required" not in line and grammar_ok(line.strip())
    )
    unparsed = [
        line
        for line in text
        if line.strip() and "restart required" not in line and not grammar_ok(line.strip())
    ]
    return Parsed(RebootStatus(required=required, packages=pkgs), unparsed)


def parse_preflight(outputs: Sequence[CommandOutput], min_free_mb: Mapping[str, int]) -> list[str]:
    """Problems from dpkg --audit, the package states, free space and the dpkg locks."""
    audit, states, space, locks = outputs
    problems: list[str] = []
    audit_text = audit.stdout.strip()
    if audit.exit_code not in (0, 1):
        problems.append(f"dpkg --audit failed with exit code {audit.exit_code}")
    elif audit_text:
        first = audit_text.splitlines()[0]
        problems.append(f"package database: dpkg --audit reports: {first}")
    if states.exit_code != 0:
        problems.append(f"dpkg-query failed with exit code {states.exit_code}")
    for line in common.lines(states.stdout):
        status, _, pkg = line.partition("\t")
        if len(status) >= 2 and (status[1] not in "inc" or status[2:3] == "R"):
            problems.append(f"package {pkg} is in state {status.strip()} (not configured)")
    problems += common.parse_free_space(space, min_free_mb)
    problems += common.parse_locks(locks)
    return problems

"""Advisories from the hosts themselves: dnf/yum updateinfo and zypper patches.

Pure command builders and parsers (as in ``integrations.packages``); the executor runs
the commands (:func:`read_host_advisories` takes its runner) and the assessment turns
the :class:`~workflows.ports.HostAdvisory` values into advisory records.

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
"""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from integrations.packages import common, rpm
from integrations.packages.base import Command, CommandOutput, Parsed, SecurityInfo, check_ok
from workflows.assessment import AdvisoryRecord
from workflows.errors import InputError
from workflows.ports import HostAdvisory

MARK = "@@patchgate:"
_CVE = re.compile(r"CVE-\d{4}-\d{4,}", re.IGNORECASE)
_SEVERITIES = {
    "critical": "critical",
    "important": "high",
    "high": "high",
    "moderate": "medium",
    "medium": "medium",
    "low": "low",
}
_ARCHES = ("x86_64", "noarch", "aarch64", "i586", "i686", "ppc64le", "s390x", "src", "nosrc")
_PATCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]*")
_DNF4_LIST = re.compile(
    r"(?:i\s+)?(?P<id>\S+)\s+(?P<sev>[A-Za-z]+)/Sec\.\s+(?P<nevra>\S+)"
    r"(?:\s+(?P<date>\d{4}-\d\d-\d\d(?:\s+\d\d:\d\d(?::\d\d)?)?))?"
)
_DNF5_ROW = re.compile(
    r"(?P<id>\S+)\s+(?P<type>security)\s+(?P<sev>\S+)\s+(?P<nevra>\S+)"
    r"(?:\s+(?P<date>\d{4}-\d\d-\d\d(?:\s+\d\d:\d\d(?::\d\d)?)?))?"
)
_INFO_FIELD = re.compile(r"\s*(?P<key>[A-Z][A-Za-z ]*?)\s*:\s?(?P<value>.*)")
_CONTINUATION = re.compile(r"\s+:\s?(?P<value>.*)")
_CAPABILITY = re.compile(
    rf"(?P<name>[A-Za-z0-9_+.-]+?)(?:\.(?P<arch>{'|'.join(_ARCHES)}))?\s*<=?\s*(?P<evr>\S+)"
)
_NOISE = re.compile(
    r"(Last metadata expiration check|Updating Subscription Management|Repositories loaded"
    r"|Loading repository data|Reading installed packages|Loaded plugins|Loading mirror"
    r"|This system is (not )?registered|Updating and loading|=+$|-+$"
    r"|(Name|CVE|Bugzilla)\s+Type\s+Severity|updateinfo (info|list) done)",
    re.IGNORECASE,
)

# dnf5 when the family is dnf and dnf5 is there, else the program itself (dnf4, yum).
_DNF_SCRIPT = r"""
prog=$1
if [ "$prog" = dnf ] && command -v dnf5 >/dev/null 2>&1; then
  if json=$(dnf5 -q advisory list --json --security 2>/dev/null); then
    echo '@@patchgate:dnf5-json'; printf '%s\n' "$json"
    echo '@@patchgate:dnf5-json-cve'
    dnf5 -q advisory list --json --security --with-cve || exit $?
    exit 0
  fi
  echo '@@patchgate:dnf5-table'
  dnf5 -q advisory list --security || exit $?
  echo '@@patchgate:dnf5-table-cve'
  dnf5 -q advisory list --security --with-cve || exit $?
  exit 0
fi
echo '@@patchgate:dnf4-list'
"$prog" -q updateinfo list --security || exit $?
echo '@@patchgate:dnf4-info'
"$prog" -q updateinfo info --security || exit $?
"""


def severity_word(value: object) -> str | None:
    """A vendor severity as PatchGate's word (Important -> high); None if unknown."""
    if not isinstance(value, str):
        return None
    return _SEVERITIES.get(value.strip().lower())


def _published(value: object) -> dt.datetime | None:
    """UNIX seconds, or ``YYYY-MM-DD[ HH:MM[:SS]]`` (UTC), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC) if value > 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return _published(int(text))
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ"):
            try:
                return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
            except ValueError:
                continue
    return None


@dataclass
class _Builder:
    """An advisory being put together from several listings."""

    id: str
    packages: dict[str, str | None] = field(default_factory=dict)
    cves: set[str] = field(default_factory=set)
    severity: str | None = None
    published: dt.datetime | None = None

    def add_nevra(self, nevra: str) -> None:
        name, evr, arch = rpm.split_nevra(nevra)
        if not name or arch in ("src", "nosrc"):
            return
        self.packages[name] = evr
        if arch == "i686":
            self.packages[f"{name}.i686"] = evr

    def merge(self, *, severity: object = None, published: object = None) -> None:
        self.severity = self.severity or severity_word(severity)
        self.published = self.published or _published(published)

    def build(self) -> HostAdvisory:
        return HostAdvisory(
            id=self.id,
            packages=dict(sorted(self.packages.items())),
            cves=tuple(sorted(c.upper() for c in self.cves)),
            severity=self.severity,
            published=self.published,
        )


class _Advisories(dict[str, _Builder]):
    def get_or_add(self, ident: str) -> _Builder:
        if ident not in self:
            self[ident] = _Builder(ident)
        return self[ident]

    def built(self) -> list[HostAdvisory]:
        return [self[k].build() for k in sorted(self)]


# --- dnf / yum --------------------------------------------------------------------------


def dnf_command(program: str = "dnf") -> Command:
    """One command listing the security advisories of ``program`` (dnf, dnf5 or yum)."""
    if program not in ("dnf", "dnf5", "yum"):
        raise InputError(f"unknown dnf-family program {program!r}")
    return Command(
        ("sh", "-c", _DNF_SCRIPT, "patchgate-advisories", "dnf" if program == "dnf5" else program),
        sudo=False,
        description="updateinfo / advisory list --security",
    )


def _sections(stdout: str) -> tuple[dict[str, str], list[str]]:
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    outside: list[str] = []
    for line in common.lines(stdout):
        if line.startswith(MARK):
            current = parts.setdefault(line[len(MARK) :].strip(), [])
        elif current is not None:
            current.append(line)
        elif line.strip() and not _NOISE.match(line.strip()):
            outside.append(line)
    return {k: "\n".join(v) for k, v in parts.items()}, outside


def parse_dnf(out: CommandOutput) -> Parsed[list[HostAdvisory]]:
    """The output of :func:`dnf_command` (any of its dnf5 / dnf4 forms)."""
    check_ok(dnf_command(), out, "updateinfo")
    parts, unparsed = _sections(out.stdout)
    found = _Advisories()
    if "dnf5-json" in parts:
        unparsed += _dnf5_json(parts["dnf5-json"], found, extended=False)
        unparsed += _dnf5_json(parts.get("dnf5-json-cve", "[]"), found, extended=True)
    elif "dnf5-table" in parts:
        unparsed += _dnf5_table(parts["dnf5-table"], parts.get("dnf5-table-cve", ""), found)
    elif "dnf4-list" in parts:
        unparsed += _dnf4_list(parts["dnf4-list"], found)
        unparsed += _dnf4_info(parts.get("dnf4-info", ""), found)
    else:
        unparsed.append("no advisory listing in the output")
    return Parsed(found.built(), unparsed)


def _json_array(text: str) -> tuple[list[Any], list[str]]:
    text = text.strip()
    if not text:
        return [], []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [f"JSON does not parse: {exc}"]
    if not isinstance(data, list):
        return [], ["JSON is not a list of advisories"]
    return data, []


def _dnf5_json(text: str, found: _Advisories, *, extended: bool) -> list[str]:
    rows, unparsed = _json_array(text)
    prefix = "advisory_" if extended else ""
    for row in rows:
        ident = row.get(f"{prefix}name") if isinstance(row, dict) else None
        nevra = row.get("nevra") if isinstance(row, dict) else None
        if not isinstance(ident, str) or not isinstance(nevra, str):
            unparsed.append(json.dumps(row)[:200])
            continue
        kind = row.get(f"{prefix}type", "security")
        if kind != "security":
            continue
        adv = found.get_or_add(ident)
        adv.add_nevra(nevra)
        adv.merge(severity=row.get(f"{prefix}severity"), published=row.get(f"{prefix}buildtime"))
        for ref in row.get("references") or []:
            if isinstance(ref, dict) and ref.get("reference_type") == "cve":
                adv.cves.add(str(ref.get("reference_id", "")))
    return unparsed


def _rows(text: str, row: re.Pattern[str], unparsed: list[str]) -> Iterator[re.Match[str]]:
    """Each table line matching ``row`` (blank and noise lines skipped; any other line
    goes to ``unparsed``)."""
    for line in common.lines(text):
        stripped = line.strip()
        if not stripped or _NOISE.match(stripped):
            continue
        m = row.fullmatch(stripped)
        if m is None:
            unparsed.append(line)
            continue
        yield m


def _dnf5_table(text: str, cve_text: str, found: _Advisories) -> list[str]:
    unparsed: list[str] = []
    by_nevra: dict[str, list[str]] = {}
    for m in _rows(text, _DNF5_ROW, unparsed):
        adv = found.get_or_add(m["id"])
        adv.add_nevra(m["nevra"])
        adv.merge(severity=m["sev"], published=m["date"])
        by_nevra.setdefault(m["nevra"], []).append(m["id"])
    for m in _rows(cve_text, _DNF5_ROW, unparsed):
        if not _CVE.fullmatch(m["id"]):
            unparsed.append(m.string)
            continue
        for ident in by_nevra.get(m["nevra"], []):
            found[ident].cves.add(m["id"])
    return unparsed


def _dnf4_list(text: str, found: _Advisories) -> list[str]:
    unparsed: list[str] = []
    for m in _rows(text, _DNF4_LIST, unparsed):
        adv = found.get_or_add(m["id"])
        adv.add_nevra(m["nevra"])
        adv.merge(severity=m["sev"], published=m["date"])
    return unparsed


def _info_blocks(text: str) -> tuple[list[dict[str, list[str]]], list[str]]:
    """``updateinfo info`` as one dict per advisory: field -> its lines."""
    blocks: list[dict[str, list[str]]] = []
    unparsed: list[str] = []
    current: dict[str, list[str]] | None = None
    key: str | None = None
    for line in common.lines(text):
        if not line.strip() or _NOISE.match(line.strip()):
            continue
        if (m := _CONTINUATION.fullmatch(line)) and current is not None and key is not None:
            current[key].append(m["value"].strip())
            continue
        m = _INFO_FIELD.fullmatch(line)
        if m is not None and m["key"] in _INFO_KEYS:
            key = m["key"]
            if key == "Update ID":
                current = {}
                blocks.append(current)
            if current is not None:
                current.setdefault(key, []).append(m["value"].strip())
            continue
        if re.match(r"  \S", line):  # an advisory's title ("  Important: openssl update")
            key = None
            continue
        unparsed.append(line)
    return blocks, unparsed


_INFO_KEYS = {
    "Update ID",
    "Type",
    "Updated",
    "Issued",
    "Bugs",
    "CVEs",
    "Description",
    "Severity",
    "Rights",
    "Files",
    "Installed",
    "Release",
    "Status",
    "Solution",
    "Reboot",
}


def _dnf4_info(text: str, found: _Advisories) -> list[str]:
    blocks, unparsed = _info_blocks(text)
    for block in blocks:
        ident = (block.get("Update ID") or [""])[0]
        if not ident:
            continue
        if (block.get("Type") or ["security"])[0].lower() != "security":
            continue
        adv = found.get_or_add(ident)
        cves = {c for v in block.get("CVEs", []) for c in _CVE.findall(v)}
        if not cves:
            cves = {c for v in block.get("Bugs", []) for c in _CVE.findall(v)}
        adv.cves.update(cves)
        issued = (block.get("Issued") or block.get("Updated") or [""])[0]
        adv.merge(severity=(block.get("Severity") or [""])[0], published=issued)
        for files in block.get("Files", []):
            for nevra in files.split():
                if nevra.endswith(".rpm"):
                    adv.add_nevra(nevra)
    return unparsed


# --- zypper -----------------------------------------------------------------------------

_ZYPPER = ("zypper", "--non-interactive", "--no-color")
_ZYPPER_OK = frozenset({0, 100, 101, 102, 103, 106})


def zypper_patches_command() -> Command:
    return Command(
        (*_ZYPPER, "--xmlout", "list-patches", "--category", "security"),
        sudo=False,
        ok_exit=_ZYPPER_OK,
        retry_exit=frozenset({7}),
        description="zypper list-patches security",
    )


def parse_zypper_patches(out: CommandOutput) -> Parsed[list[HostAdvisory]]:
    """Security patches with severity, issue date and CVEs (no packages yet)."""
    check_ok(zypper_patches_command(), out, "zypper list-patches")
    text = out.stdout
    start = text.find("<stream")
    if start < 0:
        return Parsed([], [line for line in common.lines(text) if line.strip()])
    try:
        root = ET.fromstring(text[start:])
    except ET.ParseError as exc:
        return Parsed([], [f"XML does not parse: {exc}"])
    found = _Advisories()
    notes = [f"{m.get('type')}: {m.text}" for m in root.iter("message") if m.get("type") == "error"]
    for patch in root.iter("update"):
        if patch.get("kind") != "patch" or patch.get("category") != "security":
            continue
        name = patch.get("name", "")
        adv = found.get_or_add(name)
        issued = patch.find("issue-date")
        adv.merge(
            severity=patch.get("severity"),
            published=issued.get("time") if issued is not None else None,
        )
        adv.cves.update(
            i.get("id", "") for i in patch.iter("issue") if i.get("type") == "cve" and i.get("id")
        )
    return Parsed(found.built(), [], notes)


def zypper_patch_info_command(names: Sequence[str]) -> Command:
    """``zypper info -t patch NAME…``: each patch's Conflicts name its packages."""
    if not names:
        raise InputError("no patch names given")
    for name in names:
        if not _PATCH_NAME.fullmatch(name):
            raise InputError(f"not a valid patch name: {name!r}")
    return Command(
        (*_ZYPPER, "info", "-t", "patch", *names),
        sudo=False,
        ok_exit=_ZYPPER_OK,
        retry_exit=frozenset({7}),
        description="zypper info -t patch",
    )


def parse_zypper_patch_info(out: CommandOutput) -> Parsed[dict[str, dict[str, str]]]:
    """patch name -> {package: fixed version} from the ``Conflicts`` lists."""
    check_ok(zypper_patches_command(), out, "zypper info -t patch")
    result: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    patch: str | None = None
    in_conflicts = False
    for line in common.lines(out.stdout):
        stripped = line.strip()
        if m := re.fullmatch(r"Information for patch (\S+?):?", stripped):
            patch, in_conflicts = m[1], False
            result.setdefault(patch, {})
            continue
        if m := re.fullmatch(r"patch '(\S+)' not found\.", stripped):
            notes.append(f"patch {m[1]} not found")
            continue
        if patch is None:
            continue
        if re.fullmatch(r"Conflicts\s*:\s*(\[\d+\])?", stripped):
            in_conflicts = True
            continue
        if in_conflicts:
            if not stripped:
                continue
            if stripped.startswith("srcpackage:"):
                continue
            cap = _CAPABILITY.fullmatch(stripped)
            if cap is not None:
                if cap["arch"] not in ("src", "nosrc"):
                    result[patch][cap["name"]] = cap["evr"]
                continue
            in_conflicts = False
    return Parsed(result, [], notes)


# --- running them -------------------------------------------------------------------------

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


# --- records ------------------------------------------------------------------------------


def records_from_host(advisories: Iterable[HostAdvisory], *, host: str) -> list[AdvisoryRecord]:
    """Advisory records for the assessment (the host's own data, any platform)."""
    return [
        AdvisoryRecord(
            id=a.id,
            packages=dict(a.packages),
            cves=tuple(a.cves),
            severity=a.severity,
            published=a.published,
            source=f"host {host}",
        )
        for a in advisories
    ]


def records_from_security(infos: Mapping[str, SecurityInfo], *, host: str) -> list[AdvisoryRecord]:
    """One record per advisory id (or per package when the data names none), from the
    package drivers' ``SecurityInfo`` (``list_upgradable``'s security marks)."""
    packages: dict[str, dict[str, str | None]] = {}
    cves: dict[str, set[str]] = {}
    severity: dict[str, str | None] = {}
    for info in infos.values():
        for advisory in info.advisories or (f"{info.package}-security",):
            packages.setdefault(advisory, {})[info.package] = None
            cves.setdefault(advisory, set()).update(info.cves)
            severity.setdefault(advisory, info.severity)
    return [
        AdvisoryRecord(
            id=advisory,
            packages=packages[advisory],
            cves=tuple(sorted(cves[advisory])),
            severity=severity[advisory],
            source=f"host {host}",
        )
        for advisory in sorted(packages)
    ]

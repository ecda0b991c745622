"""dnf / yum security advisories: one ``sh -c`` command (dnf5 JSON or tables, dnf4/yum
``updateinfo`` list and info), each part after a ``@@patchgate:<part>`` marker line, and
its parser (the formats are described in hostdata.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from integrations.advisories.hostcommon import Advisories
from integrations.packages import common
from integrations.packages.base import Command, CommandOutput, Parsed, check_ok
from workflows.errors import InputError
from workflows.ports import HostAdvisory

MARK = "@@patchgate:"
_CVE = re.compile(r"CVE-\d{4}-\d{4,}", re.IGNORECASE)
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
    found = Advisories()
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


def _dnf5_json(text: str, found: Advisories, *, extended: bool) -> list[str]:
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


def _dnf5_table(text: str, cve_text: str, found: Advisories) -> list[str]:
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


def _dnf4_list(text: str, found: Advisories) -> list[str]:
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


def _dnf4_info(text: str, found: Advisories) -> list[str]:
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

"""Parsers of dnf (dnf4, dnf5) and yum output, for the dnf driver (dnf.py), which checks
the exit code before handing ``check-update`` and simulation output over.

Long package names wrap onto the next line; "Obsoleting Packages" blocks are notes, not
updates; advisory listings come plain and ``--with-cve`` (dnf5's ``advisory list`` too).
Lines not understood are returned in ``Parsed.unparsed``, never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from integrations.packages import common, rpm
from integrations.packages.base import CommandOutput, Parsed, RebootStatus, SecurityInfo
from workflows.ports import Simulation, UpgradablePackage

_ARCHES = r"(?:x86_64|noarch|aarch64|i686|ppc64le|s390x|src)"
_NAME_ONLY = re.compile(rf"(?P<name>\S+)\.(?P<arch>{_ARCHES})")
_SEC4 = re.compile(r"(?P<id>\S+)\s+(?P<sev>[A-Za-z]+)/Sec\.\s+(?P<nevra>\S+)(?:\s+.*)?")
_SEC5 = re.compile(
    r"(?P<id>\S+)\s+security\s+(?P<sev>\S+)\s+(?P<nevra>\S+)(?:\s+\d{4}-\d\d-\d\d.*)?"
)
_NOISE = re.compile(
    r"(Last metadata expiration check|Updating Subscription Management|Updating and loading"
    r"|Repositories loaded|This system is (not )?registered|Loaded plugins|Loading mirror"
    r"|Security: .* is (an installed security update|the currently running version)"
    r"|Dependencies resolved|Transaction Summary"
    r"|=+$|-+$|Install +\d|Upgrade +\d|Remove +\d|Downgrade +\d|Total (download )?size"
    r"|Installed size|Operation aborted|Is this ok|Package +Arch|Name +Type +Severity"
    r"|Package +Architecture|Nothing to do|Complete!|Freed space|After this operation"
    r"| \* |Upgrading: +\d|Installing: +\d|Removing: +\d|Downgrading: +\d"
    r"|DNF will only download|Test mode|Skipping "
    # yum's plugin banner continued (": manager"), mirror lines (" * base: mirror…"),
    # the security plugin's and priorities plugin's summaries, dnf5's repository
    # progress ("Fedora 41 - Updates  100% |  15.2 KiB/s | …")
    r"|: |\* \S+: |Plugin \S+ can't be imported|This system is receiving updates"
    r"|Limiting package lists to security|\d+ package\(s\) needed for security"
    r"|No packages needed for security|\d+ packages? excluded due to repository priority"
    r"|updateinfo list done|.*\d+% \|.*\|"
    # dnf4's metadata download line ("PatchGate lab   385 kB/s | 1.7 kB   00:00")
    r"|.*\s\d+(\.\d+)? [kMG]?B/s \| +\d+(\.\d+)? [kMG]?B +\d\d:\d\d)",
    re.IGNORECASE,
)

_SECTIONS_INSTALL = ("installing", "upgrading", "downgrading", "reinstalling", "installing dep")
_SECTIONS_REMOVE = ("removing",)


def _records(lines: list[str]) -> tuple[list[tuple[bool, bool, list[str]]], list[str]]:
    """check-update's table as records (in obsoletes section, indented, fields): a record
    is ``name.arch evr repo`` plus anything after the repository, its fields wrapped over
    as many lines as the columns needed (a long name puts the version on the next line,
    a long version the repository). Returns the records and the lines not understood."""
    records: list[tuple[bool, bool, list[str]]] = []
    unparsed: list[str] = []
    obsoleting = False
    current: list[str] | None = None
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text.lower().startswith("obsoleting packages"):
            obsoleting, current = True, None
            continue
        indented = line.startswith((" ", "\t"))
        first = text.split()[0]
        starts = _NAME_ONLY.fullmatch(first) is not None
        if current is not None and len(current) < 3 and indented and not starts:
            current.extend(text.split())  # the wrapped rest of the record
            continue
        if starts and (not indented or obsoleting):
            current = text.split()
            records.append((obsoleting, indented, current))
            continue
        current = None
        if not _NOISE.match(text):
            unparsed.append(line)
    return records, unparsed


def parse_check_update(stdout: str) -> Parsed[list[UpgradablePackage]]:
    """``check-update`` lines: name.arch, candidate and repository (no installed version:
    the executor fills ``current`` with ``installed()``).

    Wrapped columns are joined; text after the repository column (a plugin's remark) is
    kept as a note. In the "Obsoleting Packages" section each unindented entry is an
    update that replaces the indented (installed) package under it; it is listed once."""
    records, unparsed = _records(common.lines(stdout))
    packages: list[UpgradablePackage] = []
    notes: list[str] = []
    seen: set[str] = set()
    listed: set[tuple[str, str]] = set()
    last_new: str | None = None
    for obsoleting, indented, fields in records:
        m = _NAME_ONLY.fullmatch(fields[0])
        assert m is not None  # _records starts a record only on name.arch
        name, arch = m["name"], m["arch"]
        if len(fields) < 3:
            unparsed.append(" ".join(fields))
            continue
        evr, repo, rest = fields[1], fields[2], fields[3:]
        if obsoleting and indented:
            notes.append(f"obsoletes: {last_new} replaces {name}.{arch} {evr}")
            continue
        last_new = f"{name}.{arch} {evr}"
        if rest:
            notes.append(f"{name}.{arch}: {' '.join(rest)}")
        if (name, arch) in listed:
            continue
        listed.add((name, arch))
        key = name if name not in seen and arch != "i686" else f"{name}.{arch}"
        if key == name:
            seen.add(name)
        packages.append(UpgradablePackage(key, None, evr, source=repo))
    return Parsed(packages, unparsed, notes)


def parse_repoquery(out: CommandOutput, patchset: Mapping[str, str]) -> Parsed[list[str]]:
    """``NAME EPOCH VERSION RELEASE`` lines (dnf4 puts a blank line after each, dnf5 does
    not); names outside the patch set are ignored."""
    offered: dict[str, set[str]] = {}
    unparsed: list[str] = []
    for line in common.lines(out.stdout):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4 or not (fields[1].isdigit() or fields[1] == "(none)"):
            if not _NOISE.match(line.strip()):
                unparsed.append(line)
            continue
        name, epoch, version, release = fields
        evr = f"{version}-{release}" if epoch in ("0", "(none)") else f"{epoch}:{version}-{release}"
        offered.setdefault(name, set()).add(evr)
    return Parsed(rpm.unavailable_pins(patchset, offered), unparsed)


def parse_updateinfo(out: CommandOutput) -> Parsed[dict[str, SecurityInfo]]:
    """dnf4/yum ``updateinfo list`` (with and without --with-cve) and dnf5 ``advisory list``."""
    found: dict[str, SecurityInfo] = {}
    unparsed: list[str] = []
    for line in common.lines(out.stdout):
        text = line.strip()
        if not text or _NOISE.match(text):
            continue
        m = _SEC4.fullmatch(text) or _SEC5.fullmatch(text)
        if m is None:
            unparsed.append(line)
            continue
        name, evr, _arch = rpm.split_nevra(m["nevra"])
        ident, severity = m["id"], m["sev"]
        old = found.get(name, SecurityInfo(package=name, version=evr))
        is_cve = ident.upper().startswith("CVE-")
        found[name] = SecurityInfo(
            package=name,
            version=evr if old.version is None or old.version == evr else old.version,
            advisories=old.advisories if is_cve or ident in old.advisories
            else (*old.advisories, ident),
            severity=severity if severity.lower() not in ("none", "unknown") else old.severity,
            cves=(*old.cves, ident) if is_cve and ident not in old.cves else old.cves,
        )  # fmt: skip
    return Parsed(found, unparsed)


def parse_transaction_table(stdout: str) -> Parsed[Simulation]:
    installs: dict[str, str] = {}
    removes: list[str] = []
    unparsed: list[str] = []
    notes: list[str] = []
    section: str | None = None
    pending: str | None = None
    for line in common.lines(stdout):
        text = line.strip()
        if not text:
            continue
        lowered = text.lower()
        if text.endswith(":") and not line.startswith(" "):
            section = lowered[:-1]
            continue
        if lowered.startswith("replacing"):
            notes.append(text)
            continue
        if _NOISE.match(text) and not line.startswith(" "):
            continue
        fields = text.split()
        if pending is not None:
            fields = [pending, *fields]
            pending = None
        if section is None or not line.startswith(" "):
            if not _NOISE.match(text):
                unparsed.append(line)
            continue
        if len(fields) == 1:
            pending = fields[0]  # a long name: arch, version... wrap onto the next line
            continue
        if len(fields) < 4:
            unparsed.append(line)
            continue
        name, _arch, evr = fields[0], fields[1], fields[2]
        if section.startswith(_SECTIONS_REMOVE):
            removes.append(name)
        elif section.startswith(_SECTIONS_INSTALL):
            installs[name] = evr
        else:
            notes.append(f"{section}: {name} {evr}")
    return Parsed(Simulation(installs=installs, removes=tuple(removes)), unparsed, notes)


def parse_needs_restarting(out: CommandOutput) -> Parsed[RebootStatus]:
    text = common.lines(out.stdout)
    joined = "\n".join(text).lower()
    if "reboot is required" in joined or "reboot is needed" in joined:
        required = True
    elif "reboot should not be necessary" in joined or "not necessary" in joined:
        required = False
    else:
        required = out.exit_code == 1
    pkgs = tuple(line.strip()[2:].strip() for line in text if line.strip().startswith("* "))
    unparsed = [
        line
        for line in text
        if line.strip()
        and not line.strip().startswith("* ")
        and not re.match(
            r"(Core libraries|No core libraries|Reboot |More information|Updating Sub)",
            line.strip(),
        )
    ]
    return Parsed(RebootStatus(required=required, packages=pkgs), unparsed)

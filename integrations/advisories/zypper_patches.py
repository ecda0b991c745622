"""zypper security patches: ``--xmlout list-patches --category security`` (names,
severities, dates, CVEs) then ``info -t patch NAME…`` (its ``Conflicts`` give the
packages and fixed versions); command builders and parsers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from integrations.advisories.hostcommon import Advisories
from integrations.packages import common
from integrations.packages.base import Command, CommandOutput, Parsed, check_ok
from workflows.errors import InputError
from workflows.ports import HostAdvisory

_ARCHES = ("x86_64", "noarch", "aarch64", "i586", "i686", "ppc64le", "s390x", "src", "nosrc")
_PATCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]*")
_CAPABILITY = re.compile(
    rf"(?P<name>[A-Za-z0-9_+.-]+?)(?:\.(?P<arch>{'|'.join(_ARCHES)}))?\s*<=?\s*(?P<evr>\S+)"
)
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
    found = Advisories()
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
        if m := re.fullmatch(r"Conflicts\s*:\s*(?P<rest>.*)", stripped):
            rest = m["rest"].strip()
            in_conflicts = not rest or re.fullmatch(r"\[\d+\]", rest) is not None
            # zypper 1.14 prints a single conflict on the label's line (lab, real zypper)
            cap = None if in_conflicts else _CAPABILITY.fullmatch(rest)
            if cap is not None and cap["arch"] not in ("src", "nosrc"):
                result[patch][cap["name"]] = cap["evr"]
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

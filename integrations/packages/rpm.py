"""Pieces shared by the RPM-based drivers (dnf/yum, zypper): names, rpm -q, material."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from integrations.packages import common, grammar
from integrations.packages.base import Command, CommandOutput, Parsed
from workflows.errors import InputError

# %|EPOCH?{...}| prints the epoch only when set: the form dnf and zypper print versions in.
RPM_QF = "%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n"
RPM_LOCKS = ("/var/lib/rpm/.rpm.lock", "/var/run/yum.pid", "/run/zypp.pid")
_NOT_INSTALLED = re.compile(r"package (\S+) is not installed")


def evr_spec(name: str, evr: str, *, sep: str = "-") -> str:
    """``name-[epoch:]version-release`` (dnf) or ``name=version-release`` (zypper)."""
    return f"{grammar.rpm_package(name)}{sep}{grammar.rpm_version(evr)}"


def specs(patchset: Mapping[str, str], *, sep: str = "-") -> list[str]:
    if not patchset:
        raise InputError("empty patch set")
    return [evr_spec(n, v, sep=sep) for n, v in sorted(patchset.items())]


def split_nevra(nevra: str) -> tuple[str, str, str | None]:
    """``name-[e:]version-release[.arch]`` -> (name, "[e:]version-release", arch)."""
    arch: str | None = None
    base = nevra.removesuffix(".rpm")
    head, dot, tail = base.rpartition(".")
    if dot and tail in {"x86_64", "noarch", "aarch64", "i686", "ppc64le", "s390x", "src"}:
        base, arch = head, tail
    name, _, rest = base.rpartition("-")
    name, _, version = name.rpartition("-")
    return name, f"{version}-{rest}", arch


def installed(packages: Sequence[str]) -> Command:
    names = grammar.names(packages, rpm=True)
    return Command(
        ("rpm", "-q", "--qf", RPM_QF, "--", *names),
        sudo=False,
        ok_exit=frozenset(range(256)),  # rpm -q exits with the number of absent packages
        description="rpm -q",
    )


def parse_installed(out: CommandOutput, packages: Sequence[str]) -> Parsed[dict[str, str | None]]:
    found: dict[str, str | None] = dict.fromkeys(packages)
    unparsed: list[str] = []
    notes: list[str] = []
    for line in common.lines(out.stdout):
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] in found:
            if found[parts[0]] is not None and found[parts[0]] != parts[1]:
                notes.append(f"{parts[0]}: several versions installed ({parts[1]} {parts[2]})")
                continue
            found[parts[0]] = parts[1]
        elif line.strip() and (
            not (m := _NOT_INSTALLED.fullmatch(line.strip())) or m[1] not in found
        ):
            unparsed.append(line)
    if out.stderr.strip():
        unparsed += [line for line in common.lines(out.stderr) if line.strip()]
    return Parsed(found, unparsed, notes)


def rpm_db_check() -> Command:
    """Reading the whole database: rpm complains on stderr when it is damaged."""
    return Command(("rpm", "-qa", "--qf", ""), sudo=False, description="rpm database")


def parse_rpm_db(out: CommandOutput) -> list[str]:
    text = (out.stderr.strip() or out.stdout.strip()).splitlines()
    if out.exit_code != 0 or out.stderr.strip():
        return [f"package database: rpm -qa: {text[0] if text else f'exit {out.exit_code}'}"]
    return []


def material_specs(installed_versions: Mapping[str, str | None]) -> list[str]:
    """``name=evr`` for every installed package (the host scripts split it)."""
    return [
        f"{grammar.rpm_package(n)}={grammar.rpm_version(v)}"
        for n, v in sorted(installed_versions.items())
        if v is not None
    ]


def rollback_specs(snapshot: Mapping[str, str | None]) -> list[str]:
    """``name=evr`` to reinstall, ``name-`` to remove (it was absent)."""
    if not snapshot:
        raise InputError("empty rollback snapshot")
    return [
        f"{grammar.rpm_package(n)}={grammar.rpm_version(v)}"
        if v is not None
        else f"{grammar.rpm_package(n)}-"
        for n, v in sorted(snapshot.items())
    ]


# The part of a rollback the rpm drivers share. Arguments after the driver's own: name=evr
# (put back: the rpm kept in $dir if there is one, else name<sep>evr from the repository)
# or name- (it was absent: remove). Leaves $back (files/specs) and $gone (names), space
# separated; every part passed grammar checks (no blanks or glob characters), so the
# driver's command may use them unquoted under set -f.
_ROLLBACK_RESOLVE = r"""
back=""; gone=""
for spec in "$@"; do
  case "$spec" in
    *-) gone="$gone ${spec%-}" ;;
    *=*)
      name=${spec%%=*}; evr=${spec#*=}; vr=${evr#*:}; f=""
      for g in "$dir/$name-$vr".*.rpm; do [ -f "$g" ] && f=$g && break; done
      if [ -n "$f" ]; then back="$back $f"; else back="$back $name$sep$evr"; fi ;;
  esac
done
set -f
"""


def rollback_command(
    snapshot: Mapping[str, str | None],
    *,
    material_dir: str,
    sep: str,
    setup: str,
    run: str,
    args: Sequence[str] = (),
    **command: Any,
) -> Command:
    """The rollback script of an rpm driver (dnf/yum, zypper): ``setup`` first (it reads
    and shifts its own ``args``), then the shared resolution of the snapshot into kept
    rpm files or repository specs (``$back``) and removals (``$gone``), then ``run``."""
    if sep not in ("-", "="):
        raise ValueError(f"spec separator must be - or =, not {sep!r}")
    directory = grammar.abs_path(material_dir)
    script = "dir=$1; sep=$2; shift 2\n" + setup + _ROLLBACK_RESOLVE + run
    return Command(
        ("sh", "-c", script, "patchgate-rollback", directory, sep, *args,
         *rollback_specs(snapshot)),
        **command,
    )  # fmt: skip


def _epoch_vr(evr: str) -> tuple[str, str]:
    epoch, sep, vr_ = evr.partition(":")
    return (epoch or "0", vr_) if sep else ("0", evr)


def pin_offered(pin: str, offered: str) -> bool:
    """Does a repository version ``offered`` satisfy the pinned ``pin``? Epoch 0 may be
    written or not; a pin without a release matches any release of its version."""
    pin_e, pin_vr = _epoch_vr(pin)
    off_e, off_vr = _epoch_vr(offered)
    if not (pin_e.isdigit() and off_e.isdigit()) or int(pin_e) != int(off_e):
        return False
    if "-" in pin_vr:
        return pin_vr == off_vr
    return off_vr.rsplit("-", 1)[0] == pin_vr


def unavailable_pins(patchset: Mapping[str, str], offered: Mapping[str, set[str]]) -> list[str]:
    """``name=version`` of the pins no repository offers (``offered``: name -> versions)."""
    return [
        f"{name}={pin}"
        for name, pin in sorted(patchset.items())
        if not any(pin_offered(pin, v) for v in offered.get(name, ()))
    ]

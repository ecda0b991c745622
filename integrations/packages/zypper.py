"""zypper (SUSE): command builders and parsers, reading zypper's ``--xmlout`` output (its
plain tables too, when a listing comes without XML: zypper_tables.py).

Exit codes: 0 ok; 100/101 updates/security updates available, 102 reboot needed,
103 run again (zypper updated itself), 106 some repositories skipped (a warning) are
successes; 7 = locked by another process (retry); 104 (not found), 105 (interrupted),
107 (a package script failed) and the rest are failures. Security: ``list-patches
--category security``; a patch names no packages there, so each patch is keyed by the
package its summary names ("Security update for openssl-3") when it names one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

from integrations.packages import common, grammar, rpm, zypper_tables
from integrations.packages.base import (
    Command,
    CommandOutput,
    Parsed,
    RebootStatus,
    SecurityInfo,
    check_ok,
)
from workflows.errors import CommandFailed, InputError
from workflows.ports import Simulation, UpgradablePackage

OK_EXIT = frozenset({0, 100, 101, 102, 103, 106})
LOCKED = frozenset({7})
_ZYPPER = ("zypper", "--non-interactive", "--no-color")
_FOR = re.compile(r"(?:Security|Recommended|Optional) update for (\S+)", re.IGNORECASE)

_SECURE_SCRIPT = r"""
dir=$1; shift
umask 077
mkdir -p -- "$dir" || exit 2
missing=0
for spec in "$@"; do
  name=${spec%%=*}; evr=${spec#*=}; vr=${evr#*:}; found=""
  for f in "$dir/$name-$vr".*.rpm; do [ -f "$f" ] && found=$f && break; done
  if [ -z "$found" ]; then
    zypper --non-interactive download "$name=$evr" >/dev/null 2>&1
    f=$(find /var/cache/zypp/packages -name "$name-$vr.*.rpm" 2>/dev/null | head -n 1)
    [ -n "$f" ] && cp -- "$f" "$dir/" && found="$dir/${f##*/}"
  fi
  if [ -n "$found" ]; then echo "SECURED $name $evr $found"
  else echo "MISSING $name $evr"; missing=1; fi
done
[ "$missing" = 0 ] || exit 3
"""

# install --oldpackage of the kept rpms (or the repository's), "-name" removes what was
# absent (rpm.rollback_command resolves $back/$gone). --allow-unsigned-rpm: zypper checks
# a plain rpm file's signature against its "Plain RPM files cache" (gpgcheck on), so the
# kept copy of a package from an unsigned repository aborts the rollback (exit 8, "File is
# unsigned"; seen on the lab's real zypper). The kept copies were fetched by
# ``zypper download`` under their repository's own gpg policy into a root-only directory.
_ROLLBACK_RUN = r"""
for g in $gone; do back="$back -$g"; done
exec zypper --non-interactive --no-color install --oldpackage --force-resolution \
  --allow-unsigned-rpm -- $back
"""


def _xml(out: CommandOutput) -> tuple[ET.Element | None, list[str]]:
    text = out.stdout
    start = text.find("<stream")
    if start < 0:
        return None, [line for line in common.lines(text) if line.strip()]
    unparsed = [line for line in common.lines(text[:start]) if line.strip() and "<?xml" not in line]
    try:
        return ET.fromstring(text[start:]), unparsed
    except ET.ParseError as exc:
        return None, [*unparsed, f"XML does not parse: {exc}"]


class ZypperDriver:
    name = "zypper"

    def __init__(self, *, min_free_mb: Mapping[str, int] = common.DEFAULT_MIN_FREE_MB) -> None:
        self.min_free_mb = dict(min_free_mb)

    def _cmd(self, *args: str, sudo: bool = True, description: str = "") -> Command:
        return Command((*_ZYPPER, *args), sudo=sudo, ok_exit=OK_EXIT, retry_exit=LOCKED,
                       description=description)  # fmt: skip

    def refresh(self) -> Command:
        return self._cmd("refresh", description="zypper refresh")

    def list_upgradable(self) -> Command:
        return self._cmd("--xmlout", "list-updates", description="zypper list-updates")

    def parse_upgradable(self, out: CommandOutput) -> Parsed[list[UpgradablePackage]]:
        check_ok(self.list_upgradable(), out, "zypper list-updates")
        root, unparsed = _xml(out)
        if root is None:
            return _updates_table(out)
        packages = []
        for update in root.iter("update"):
            if update.get("kind", "package") != "package":
                continue
            source = update.find("source")
            packages.append(
                UpgradablePackage(
                    name=update.get("name", ""),
                    current=update.get("edition-old"),
                    candidate=update.get("edition", ""),
                    source=source.get("alias") if source is not None else None,
                )
            )
        return Parsed(packages, unparsed, _messages(root))

    def security_updates(self) -> Command | None:
        return self._cmd("--xmlout", "list-patches", "--category", "security",
                         sudo=False, description="zypper list-patches security")  # fmt: skip

    def parse_security(self, out: CommandOutput) -> Parsed[dict[str, SecurityInfo]]:
        check_ok(Command(("zypper",), ok_exit=OK_EXIT), out, "zypper list-patches")
        root, unparsed = _xml(out)
        found: dict[str, SecurityInfo] = {}
        notes: list[str] = []
        if root is None:
            return _patches_table(out)
        for patch in root.iter("update"):
            if patch.get("kind") != "patch" or patch.get("category") != "security":
                continue
            summary = patch.findtext("summary", "")
            m = _FOR.fullmatch(summary.strip())
            key = m[1].rstrip(",.") if m else patch.get("name", "")
            if not m:
                notes.append(f"patch {patch.get('name')} names no single package: {summary}")
            cves = tuple(i.get("id", "") for i in patch.iter("issue") if i.get("type") == "cve")
            old = found.get(key)
            found[key] = SecurityInfo(
                package=key,
                advisories=(*(old.advisories if old else ()), patch.get("name", "")),
                severity=patch.get("severity"),
                cves=(*(old.cves if old else ()), *cves),
            )
        return Parsed(found, unparsed, notes + _messages(root))

    def installed(self, packages: Sequence[str]) -> Command:
        return rpm.installed(packages)

    def parse_installed(
        self, out: CommandOutput, packages: Sequence[str]
    ) -> Parsed[dict[str, str | None]]:
        check_ok(self.installed(packages), out, "rpm -q")
        return rpm.parse_installed(out, packages)

    def simulate(self, packages: Sequence[str]) -> Command:
        if not packages:
            raise InputError("no packages given")
        specs = []
        for spec in packages:
            name, sep, evr = spec.partition("=")
            specs.append(rpm.evr_spec(name, evr, sep="=") if sep else grammar.rpm_package(name))
        return self._cmd("--xmlout", "install", "--dry-run", "--", *specs,
                         description="zypper install --dry-run")  # fmt: skip

    def parse_simulation(self, out: CommandOutput) -> Parsed[Simulation]:
        check_ok(self.simulate(["x"]), out, "zypper install --dry-run")
        root, unparsed = _xml(out)
        installs: dict[str, str] = {}
        removes: list[str] = []
        if root is not None:
            for section in ("to-install", "to-upgrade", "to-downgrade", "to-reinstall"):
                for el in root.iter(section):
                    for s in el.iter("solvable"):
                        installs[s.get("name", "")] = s.get("edition", "")
            for el in root.iter("to-remove"):
                removes += [s.get("name", "") for s in el.iter("solvable")]
        notes = _messages(root) if root is not None else []
        return Parsed(Simulation(installs=installs, removes=tuple(removes)), unparsed, notes)

    def install_exact(self, patchset: Mapping[str, str]) -> Command:
        specs = rpm.specs(patchset, sep="=")
        return self._cmd("install", "--auto-agree-with-licenses", "--", *specs,
                         description="zypper install exact")  # fmt: skip

    def unavailable(self, patchset: Mapping[str, str]) -> Command:
        """Every version of the pinned packages, per repository (``search --match-exact
        --details``, XML); exit 104 = none of them found."""
        rpm.specs(patchset, sep="=")  # validates names and versions
        return Command(
            (*_ZYPPER, "--xmlout", "search", "--match-exact", "--details", "--type",
             "package", *sorted(patchset)),
            sudo=False,
            ok_exit=OK_EXIT | {104},
            retry_exit=LOCKED,
            description="zypper search --details",
        )  # fmt: skip

    def parse_unavailable(
        self, out: CommandOutput, patchset: Mapping[str, str]
    ) -> Parsed[list[str]]:
        """``name=version`` of the pins no repository offers any more (an installed
        package's "(System Packages)" row is not a repository)."""
        check_ok(self.unavailable(patchset), out, "zypper search")
        root, unparsed = _xml(out)
        if root is None:
            raise CommandFailed(
                "?", "zypper search printed no XML", exit_code=out.exit_code,
                output_tail=out.tail(),
            )  # fmt: skip
        offered: dict[str, set[str]] = {}
        for item in root.iter("solvable"):
            name, edition = item.get("name"), item.get("edition")
            if item.get("kind", "package") != "package" or not name or not edition:
                continue
            if item.get("repository") == "(System Packages)":
                continue
            offered.setdefault(name, set()).add(edition)
        notes = [m for m in _messages(root) if m.startswith("warning")]
        return Parsed(rpm.unavailable_pins(patchset, offered), unparsed, notes)

    def secure_rollback_material(
        self, installed: Mapping[str, str | None], *, material_dir: str
    ) -> Command:
        directory = grammar.abs_path(material_dir)
        return Command(
            ("sh", "-c", _SECURE_SCRIPT, "patchgate-secure", directory,
             *rpm.material_specs(installed)),
            ok_exit=frozenset({0, 3}),
            description="secure rollback material",
        )  # fmt: skip

    def parse_rollback_material(self, out: CommandOutput) -> Parsed[dict[str, str | None]]:
        return common.parse_secured(self.secure_rollback_material({}, material_dir="/"), out)

    def transaction_id(self) -> Command | None:
        return None

    def parse_transaction_id(self, out: CommandOutput) -> str | None:
        return None

    def rollback(
        self,
        snapshot: Mapping[str, str | None],
        *,
        material_dir: str,
        transaction: str | None = None,
    ) -> Command:
        return rpm.rollback_command(
            snapshot,
            material_dir=material_dir,
            sep="=",
            setup="",
            run=_ROLLBACK_RUN,
            ok_exit=OK_EXIT,
            retry_exit=LOCKED,
            description="zypper install --oldpackage (rollback)",
        )

    def reboot_required(self) -> Command:
        return self._cmd("needs-rebooting", sudo=False, description="zypper needs-rebooting")

    def parse_reboot(self, out: CommandOutput) -> Parsed[RebootStatus]:
        text = out.stdout.lower()
        if "reboot is required" in text or "reboot is suggested" in text:
            required = True
        elif "not necessary" in text:
            required = False
        else:
            required = out.exit_code == 102
        known = ("core libraries", "no core libraries", "reboot ", "since the last")
        unparsed = [
            line for line in common.lines(out.stdout)
            if line.strip() and not line.strip().lower().startswith(known)
        ]  # fmt: skip
        return Parsed(RebootStatus(required=required), unparsed)

    def parse_reboot_required(self, out: CommandOutput) -> bool:
        return self.parse_reboot(out).value.required

    def preflight_checks(self) -> list[Command]:
        return [
            rpm.rpm_db_check(),
            common.free_space_check(self.min_free_mb),
            common.lock_check(rpm.RPM_LOCKS),
        ]

    def parse_preflight(self, outputs: Sequence[CommandOutput]) -> list[str]:
        if len(outputs) != 3:
            raise ValueError("parse_preflight needs the outputs of the three preflight_checks")
        db, space, locks = outputs
        return (
            rpm.parse_rpm_db(db)
            + common.parse_free_space(space, self.min_free_mb)
            + common.parse_locks(locks)
        )


def _messages(root: ET.Element) -> list[str]:
    return [
        f"{m.get('type')}: {m.text}"
        for m in root.iter("message")
        if m.get("type") in ("warning", "error")
    ]


def _updates_table(out: CommandOutput) -> Parsed[list[UpgradablePackage]]:
    """``zypper list-updates`` as a table (no XML): S | Repository | Name | Current
    Version | Available Version | Arch."""
    rows, unparsed, notes = zypper_tables.read_table(out.stdout, zypper_tables.UPDATE_COLUMNS)
    packages = [
        UpgradablePackage(
            name=row["Name"],
            current=row.get("Current Version") or None,
            candidate=row["Available Version"],
            source=row["Repository"],
        )
        for row in rows
    ]
    return Parsed(packages, unparsed, notes)


def _patches_table(out: CommandOutput) -> Parsed[dict[str, SecurityInfo]]:
    """``zypper list-patches --category security`` as a table (no XML)."""
    rows, unparsed, notes = zypper_tables.read_table(out.stdout, zypper_tables.PATCH_COLUMNS)
    found: dict[str, SecurityInfo] = {}
    for row in rows:
        if row["Category"] != "security":
            continue
        m = _FOR.fullmatch(row["Summary"])
        key = m[1].rstrip(",.") if m else row["Name"]
        if not m:
            notes.append(f"patch {row['Name']} names no single package: {row['Summary']}")
        old = found.get(key)
        found[key] = SecurityInfo(
            package=key,
            advisories=(*(old.advisories if old else ()), row["Name"]),
            severity=row["Severity"] or None,
            cves=old.cves if old else (),
        )
    return Parsed(found, unparsed, notes)

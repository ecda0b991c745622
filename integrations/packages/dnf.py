"""dnf (dnf4 and dnf5) and yum (RHEL family): command builders and parsers.

- upgradable: ``check-update`` (exit 100 = updates, 0 = none, 1 = error); long names
  wrap onto the next line; "Obsoleting Packages" blocks are notes, not updates. It
  prints no installed version: the executor fills ``current`` with ``installed()``.
- security: ``updateinfo list --security`` run twice, plain and ``--with-cve``, so each
  package gets its advisory ids, severity and CVEs (dnf5's ``advisory list`` too).
- rollback: ``history undo <transaction>`` when the apply's transaction id is known,
  falling back to ``downgrade`` of the kept rpms (or the repository) and ``remove`` of
  the packages that were absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from integrations.packages import common, grammar, rpm
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

DNF_LOCK_MARKERS = (
    "Failed to obtain the transaction lock",
    "Another app is currently holding the yum lock",
    "waiting for process with pid",
)
_ARCHES = r"(?:x86_64|noarch|aarch64|i686|ppc64le|s390x|src)"
_CHECK_LINE = re.compile(rf"(?P<name>\S+)\.(?P<arch>{_ARCHES})\s+(?P<evr>\S+)\s+(?P<repo>\S+)")
_NAME_ONLY = re.compile(rf"(?P<name>\S+)\.(?P<arch>{_ARCHES})")
_EVR_REPO = re.compile(r"\s+(?P<evr>\S+)\s+(?P<repo>\S+)")
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
    r"|DNF will only download|Test mode|Skipping )",
    re.IGNORECASE,
)

_SECURE_SCRIPT = r"""
dir=$1; tool=$2; shift 2
umask 077
mkdir -p -- "$dir" || exit 2
missing=0
for spec in "$@"; do
  name=${spec%%=*}; evr=${spec#*=}; vr=${evr#*:}
  found=""
  for f in "$dir/$name-$vr".*.rpm; do [ -f "$f" ] && found=$f && break; done
  if [ -z "$found" ]; then
    "$tool" -q -y download --destdir "$dir" -- "$name-$evr" >/dev/null 2>&1
    for f in "$dir/$name-$vr".*.rpm; do [ -f "$f" ] && found=$f && break; done
  fi
  if [ -n "$found" ]; then echo "SECURED $name $evr $found"
  else echo "MISSING $name $evr"; missing=1; fi
done
[ "$missing" = 0 ] || exit 3
"""

# history undo of the apply's transaction first; else downgrade to the kept rpms (or the
# repository's) and remove what was absent (rpm.rollback_command resolves $back/$gone).
_ROLLBACK_SETUP = r"""
tool=$1; tid=$2; shift 2
if [ -n "$tid" ] && "$tool" -y history undo "$tid"; then exit 0; fi
[ -n "$tid" ] && echo "patchgate: history undo $tid failed, downgrading" >&2
"""
_ROLLBACK_RUN = r"""
rc=0
if [ -n "$back" ]; then "$tool" -y downgrade $back || "$tool" -y install $back || rc=$?; fi
if [ "$rc" = 0 ] && [ -n "$gone" ]; then "$tool" -y remove $gone || rc=$?; fi
exit "$rc"
"""

_REPOQUERY_QF = "%{name} %{epoch} %{version} %{release}\\n"  # dnf5 adds no newline itself

_SECTIONS_INSTALL = ("installing", "upgrading", "downgrading", "reinstalling", "installing dep")
_SECTIONS_REMOVE = ("removing",)


class DnfDriver:
    """dnf4, dnf5 and yum share command lines; ``program`` picks the binary."""

    def __init__(
        self,
        program: str = "dnf",
        *,
        min_free_mb: Mapping[str, int] = common.DEFAULT_MIN_FREE_MB,
    ) -> None:
        if program not in ("dnf", "yum", "dnf5"):
            raise InputError(f"unknown dnf-family program {program!r}")
        self.program = program
        self.name = "yum" if program == "yum" else "dnf"
        self.min_free_mb = dict(min_free_mb)

    def _cmd(self, *args: str, **kw: object) -> Command:
        return Command((self.program, *args), retry_markers=DNF_LOCK_MARKERS, **kw)  # type: ignore[arg-type]

    def refresh(self) -> Command:
        return self._cmd("-y", "makecache", description=f"{self.program} makecache")

    def list_upgradable(self) -> Command:
        return self._cmd(
            "check-update",
            sudo=False,
            ok_exit=frozenset({0, 100}),
            description=f"{self.program} check-update",
        )

    def parse_upgradable(self, out: CommandOutput) -> Parsed[list[UpgradablePackage]]:
        check_ok(self.list_upgradable(), out, "check-update")
        packages: list[UpgradablePackage] = []
        unparsed: list[str] = []
        notes: list[str] = []
        seen: set[str] = set()
        obsoleting = False
        pending: tuple[str, str] | None = None
        last_new: str | None = None
        for line in common.lines(out.stdout):
            if not line.strip():
                continue
            if line.strip().lower().startswith("obsoleting packages"):
                obsoleting = True
                continue
            if pending is not None and (m := _EVR_REPO.fullmatch(line)):
                name, arch = pending
                pending = None
                evr, repo = m["evr"], m["repo"]
            elif m := _CHECK_LINE.fullmatch(line.strip()):
                if obsoleting and line.startswith((" ", "\t")):
                    notes.append(f"obsoletes: {last_new} replaces {m['name']}.{m['arch']}")
                    continue
                name, arch, evr, repo = m["name"], m["arch"], m["evr"], m["repo"]
            elif m := _NAME_ONLY.fullmatch(line.strip()):  # a long name: the rest wraps
                pending = (m["name"], m["arch"])
                continue
            else:
                if not _NOISE.match(line.strip()):
                    unparsed.append(line)
                continue
            last_new = f"{name}.{arch}"
            if obsoleting:
                notes.append(f"obsoleting: {name}.{arch} {evr}")
                continue
            key = name if name not in seen and arch != "i686" else f"{name}.{arch}"
            if key == name:
                seen.add(name)
            packages.append(UpgradablePackage(key, None, evr, source=repo))
        if pending is not None:
            unparsed.append(f"{pending[0]}.{pending[1]}")
        return Parsed(packages, unparsed, notes)

    def security_updates(self) -> Command | None:
        if self.program == "dnf5":
            script = '"$1" -q advisory list --security; "$1" -q advisory list --security --with-cve'
        else:
            script = (
                '"$1" -q updateinfo list --security --available;'
                ' "$1" -q updateinfo list --security --available --with-cve'
            )
        return Command(
            ("sh", "-c", script, "patchgate-sec", self.program),
            sudo=False,
            description="updateinfo list --security",
        )

    def parse_security(self, out: CommandOutput) -> Parsed[dict[str, SecurityInfo]]:
        return parse_updateinfo(out)

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
            specs.append(rpm.evr_spec(name, evr) if sep else grammar.rpm_package(name))
        return self._cmd(
            "--assumeno",
            "install",
            *specs,
            sudo=False,
            ok_exit=frozenset({0, 1}),  # --assumeno ends with "Operation aborted", exit 1
            description=f"{self.program} --assumeno install",
        )

    def parse_simulation(self, out: CommandOutput) -> Parsed[Simulation]:
        check_ok(self.simulate(["x"]), out, "simulation")
        errors = [line for line in common.lines(out.stdout + out.stderr) if "Error" in line]
        if errors:
            raise CommandFailed("?", errors[0], exit_code=out.exit_code, output_tail=out.tail())
        return parse_transaction_table(out.stdout)

    def install_exact(self, patchset: Mapping[str, str]) -> Command:
        return self._cmd("-y", "install", *rpm.specs(patchset), description="install exact")

    def unavailable(self, patchset: Mapping[str, str]) -> Command:
        """Every version the repositories offer of the pinned packages (``repoquery
        --available``: repository packages, installed or not). An unreachable repository
        is an error (exit 1), not an empty answer that would read as "all gone"."""
        rpm.specs(patchset)  # validates names and versions
        return self._cmd(
            "-q",
            "--setopt=skip_if_unavailable=False",
            "repoquery",
            "--available",
            "--queryformat",
            _REPOQUERY_QF,
            *sorted(patchset),
            sudo=False,
            description=f"{self.program} repoquery --available",
        )

    def parse_unavailable(
        self, out: CommandOutput, patchset: Mapping[str, str]
    ) -> Parsed[list[str]]:
        """``name=version`` of the pins no repository offers any more."""
        check_ok(self.unavailable(patchset), out, "repoquery")
        return parse_repoquery(out, patchset)

    def secure_rollback_material(
        self, installed: Mapping[str, str | None], *, material_dir: str
    ) -> Command:
        directory = grammar.abs_path(material_dir)
        specs = rpm.material_specs(installed)
        return Command(
            ("sh", "-c", _SECURE_SCRIPT, "patchgate-secure", directory, self.program, *specs),
            ok_exit=frozenset({0, 3}),
            description="secure rollback material",
        )

    def parse_rollback_material(self, out: CommandOutput) -> Parsed[dict[str, str | None]]:
        return rpm.parse_secured(self.secure_rollback_material({}, material_dir="/"), out)

    def transaction_id(self) -> Command | None:
        return Command(
            (self.program, "-q", "history", "list"), sudo=False, description="history list"
        )

    def parse_transaction_id(self, out: CommandOutput) -> str | None:
        """The newest transaction id (the first row of ``history list``)."""
        for line in common.lines(out.stdout):
            first = line.strip().split(" ", 1)[0]
            if first.isdigit():
                return first
        return None

    def rollback(
        self,
        snapshot: Mapping[str, str | None],
        *,
        material_dir: str,
        transaction: str | None = None,
    ) -> Command:
        tid = grammar.token(transaction, "transaction id") if transaction else ""
        if tid and not tid.isdigit():
            raise InputError(f"not a valid transaction id: {transaction!r}")
        return rpm.rollback_command(
            snapshot,
            material_dir=material_dir,
            sep="-",
            setup=_ROLLBACK_SETUP,
            run=_ROLLBACK_RUN,
            args=(self.program, tid),
            retry_markers=DNF_LOCK_MARKERS,
            description="history undo / downgrade (rollback)",
        )

    def reboot_required(self) -> Command:
        argv = ("needs-restarting", "-r") if self.program == "yum" else (
            self.program, "needs-restarting", "-r")  # fmt: skip
        return Command(argv, ok_exit=frozenset({0, 1}), description="needs-restarting -r")

    def parse_reboot(self, out: CommandOutput) -> Parsed[RebootStatus]:
        return parse_needs_restarting(out)

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

"""apt/dpkg (Debian, Ubuntu): command builders and parsers.

- upgradable: ``apt-get -s -o Debug::NoLocking=1 dist-upgrade`` (stable output, no root,
  no lock); its ``Inst`` lines give current, candidate, origins and architecture. The
  parser also reads ``apt list --upgradable`` output (what operators often capture).
- security: an origin whose archive/suite ends in ``-security`` (``bookworm-security``,
  ``jammy-security``, ``Debian-Security:12/stable-security``).
- rollback material: the installed versions' ``.deb`` files copied from the apt cache,
  else ``apt-get download``, else ``dpkg-repack``, into ``material_dir`` as
  ``NAME_VERSION.deb`` (``:`` in the version written ``%3a``, as apt does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from integrations.packages import common, grammar
from integrations.packages.base import (
    Command,
    CommandOutput,
    Parsed,
    RebootStatus,
    SecurityInfo,
    check_ok,
    split_spec,
)
from integrations.packages.versions import compare_debian
from workflows.errors import InputError
from workflows.ports import Simulation, UpgradablePackage

APT_LOCK_MARKERS = (
    "Could not get lock",
    "Unable to acquire the dpkg frontend lock",
    "Unable to lock the administration directory",
    "is another process using it?",
)
_DPKG_LOCKS = (
    "/var/lib/dpkg/lock-frontend",
    "/var/lib/dpkg/lock",
    "/var/lib/apt/lists/lock",
    "/var/cache/apt/archives/lock",
)
_NONINTERACTIVE = {"DEBIAN_FRONTEND": "noninteractive"}
_DPKG_OPTS = (
    "-o",
    "DPkg::Lock::Timeout=120",
    "-o",
    "Dpkg::Options::=--force-confold",
    "-o",
    "Dpkg::Options::=--force-confdef",
)

# Every version apt knows of each name (repositories and dpkg's status), one block per
# name: "@ NAME" then "V VERSION" lines. Not "apt-cache show NAME=VERSION": that exits 0
# (and prints nothing) for a version no source has (apt 2.6, found by the lab test).
_VERSIONS = r"""
for n in "$@"; do
  echo "@ $n"
  apt-cache show -- "$n" 2>/dev/null | sed -n 's/^Version: /V /p'
done
exit 0
"""

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

# Keep one .deb per installed version; print SECURED/MISSING lines; exit 3 when some missing.
_SECURE_SCRIPT = r"""
dir=$1; cache=$2; shift 2
# apt fetches a local .deb as its sandbox user (_apt) at rollback: the directory must
# be traversable and the files readable by it (they are public packages anyway).
umask 022
mkdir -p -- "$dir" && chmod 0755 -- "$dir" || exit 2
cd -- "$dir" || exit 2
missing=0
for spec in "$@"; do
  name=${spec%%=*}; ver=${spec#*=}; base=${name%%:*}
  enc=$(printf '%s' "$ver" | sed 's/:/%3a/g')
  out="${base}_${enc}.deb"
  if [ ! -s "$out" ]; then
    for f in "$cache/${base}_${enc}"_*.deb; do
      [ -f "$f" ] && cp -- "$f" "$out" && break
    done
  fi
  if [ ! -s "$out" ]; then
    rm -f -- "${base}_${enc}"_*.deb
    if apt-get download -o Debug::NoLocking=1 -- "$name=$ver" >/dev/null 2>&1; then
      for f in "${base}_${enc}"_*.deb; do [ -f "$f" ] && mv -- "$f" "$out" && break; done
    fi
  fi
  if [ ! -s "$out" ] && command -v dpkg-repack >/dev/null 2>&1; then
    inst=$(dpkg-query -W -f='${Version}' -- "$name" 2>/dev/null)
    if [ "$inst" = "$ver" ] && dpkg-repack -- "$name" >/dev/null 2>&1; then
      for f in "${base}_${enc}"_*.deb; do [ -f "$f" ] && mv -- "$f" "$out" && break; done
    fi
  fi
  if [ -s "$out" ]; then chmod 0644 -- "$out"; echo "SECURED $name $ver $dir/$out"
  else echo "MISSING $name $ver"; missing=1; fi
done
[ "$missing" = 0 ] || exit 3
"""

# Reinstall kept .debs (falling back to NAME=VERSION from the repository) and remove
# the packages that were absent (apt-get's NAME- suffix), in one apt transaction.
_ROLLBACK_SCRIPT = r"""
dir=$1; shift
n=$#; i=0
while [ "$i" -lt "$n" ]; do
  spec=$1; shift; i=$((i + 1))
  case "$spec" in
    *-) set -- "$@" "$spec" ;;
    *=*)
      name=${spec%%=*}; ver=${spec#*=}; base=${name%%:*}
      enc=$(printf '%s' "$ver" | sed 's/:/%3a/g')
      if [ -s "$dir/${base}_${enc}.deb" ]; then set -- "$@" "$dir/${base}_${enc}.deb"
      else echo "patchgate: no kept .deb for $name=$ver, using the repository" >&2
           set -- "$@" "$spec"; fi ;;
  esac
done
exec apt-get -y --allow-downgrades -o DPkg::Lock::Timeout=120 \
  -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef install "$@"
"""

_REBOOT_SCRIPT = (
    "if [ -e /var/run/reboot-required ]; then echo '*** System restart required ***'; "
    "cat /var/run/reboot-required.pkgs 2>/dev/null; fi; exit 0"
)


def is_security_origin(origin: str) -> bool:
    """``bookworm-security``, ``Debian-Security:12/stable-security``, ``jammy-security``."""
    suite = origin.strip().rsplit("/", 1)[-1]
    return suite.endswith("-security") or suite.endswith("/updates")


def _spec(spec: str) -> str:
    name, version = split_spec(spec)
    grammar.debian_package(name)
    if version is not None:
        grammar.debian_version(version)
    return spec


def _patchset(patchset: Mapping[str, str]) -> list[str]:
    if not patchset:
        raise InputError("empty patch set")
    return [
        f"{grammar.debian_package(n)}={grammar.debian_version(v)}"
        for n, v in sorted(patchset.items())
    ]


class AptDriver:
    name = "apt"

    def __init__(
        self,
        *,
        min_free_mb: Mapping[str, int] = common.DEFAULT_MIN_FREE_MB,
        apt_cache: str = "/var/cache/apt/archives",
    ) -> None:
        self.min_free_mb = dict(min_free_mb)
        self.apt_cache = grammar.abs_path(apt_cache)

    # --- metadata and upgradable ----------------------------------------------------------

    def refresh(self) -> Command:
        return Command(
            ("apt-get", "-q", "-o", "APT::Update::Error-Mode=any", "-o",
             "DPkg::Lock::Timeout=120", "update"),
            env=_NONINTERACTIVE,
            retry_markers=APT_LOCK_MARKERS,
            description="apt-get update",
        )  # fmt: skip

    def list_upgradable(self) -> Command:
        return Command(
            ("apt-get", "-s", "-o", "Debug::NoLocking=1", "dist-upgrade"),
            sudo=False,
            env=_NONINTERACTIVE,
            description="apt-get -s dist-upgrade",
        )

    def parse_upgradable(self, out: CommandOutput) -> Parsed[list[UpgradablePackage]]:
        check_ok(self.list_upgradable(), out, "apt-get -s dist-upgrade")
        packages: list[UpgradablePackage] = []
        unparsed: list[str] = []
        notes: list[str] = []
        block: str | None = None
        seen: set[str] = set()
        for line in common.lines(out.stdout):
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

    def security_updates(self) -> Command | None:
        return None

    def parse_security(self, out: CommandOutput) -> Parsed[dict[str, SecurityInfo]]:
        """From list_upgradable's output: the updates that come from a security origin."""
        parsed = self.parse_upgradable(out)
        value = {
            p.name: SecurityInfo(package=p.name, version=p.candidate)
            for p in parsed.value
            if p.security
        }
        return Parsed(value, parsed.unparsed, parsed.notes)

    # --- installed versions -------------------------------------------------------------

    def installed(self, packages: Sequence[str]) -> Command:
        names = grammar.names(packages)
        return Command(
            ("dpkg-query", "-W", "-f=${binary:Package}\\t${Version}\\t${db:Status-Abbrev}\\n",
             "--", *names),
            sudo=False,
            ok_exit=frozenset({0, 1}),  # 1: some package is unknown to dpkg
            description="dpkg-query -W",
        )  # fmt: skip

    def parse_installed(
        self, out: CommandOutput, packages: Sequence[str]
    ) -> Parsed[dict[str, str | None]]:
        check_ok(self.installed(packages), out, "dpkg-query")
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

    # --- simulate and apply ---------------------------------------------------------------

    def simulate(self, packages: Sequence[str]) -> Command:
        if not packages:
            raise InputError("no packages given")
        specs = [_spec(p) for p in packages]
        return Command(
            ("apt-get", "-s", "-o", "Debug::NoLocking=1", "install", *specs),
            sudo=False,
            env=_NONINTERACTIVE,
            description="apt-get -s install",
        )

    def parse_simulation(self, out: CommandOutput) -> Parsed[Simulation]:
        if out.exit_code != 0:
            check_ok(Command(("apt-get",)), out, "apt-get -s install")
        installs: dict[str, str] = {}
        removes: list[str] = []
        unparsed: list[str] = []
        notes: list[str] = []
        for line in common.lines(out.stdout):
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

    def install_exact(self, patchset: Mapping[str, str]) -> Command:
        specs = _patchset(patchset)
        return Command(
            ("apt-get", "-y", "-q", *_DPKG_OPTS, "install", *specs),
            env=_NONINTERACTIVE,
            retry_markers=APT_LOCK_MARKERS,
            description="apt-get install (exact versions)",
        )

    def unavailable(self, patchset: Mapping[str, str]) -> Command:
        """Every version apt can find of the pinned packages (repositories, and the
        installed one from dpkg's status); ``parse_unavailable`` compares."""
        names = [spec.split("=", 1)[0] for spec in _patchset(patchset)]
        return Command(
            ("sh", "-c", _VERSIONS, "patchgate-versions", *names),
            sudo=False,
            description="apt-cache show (pinned packages' versions)",
        )

    def parse_unavailable(
        self, out: CommandOutput, patchset: Mapping[str, str]
    ) -> Parsed[list[str]]:
        """``name=version`` of the pins apt cannot find (compared as dpkg does)."""
        check_ok(self.unavailable(patchset), out, "apt-cache show")
        offered: dict[str, list[str]] = {}
        unparsed: list[str] = []
        current: str | None = None
        for line in common.lines(out.stdout):
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

    # --- rollback ---------------------------------------------------------------------

    def secure_rollback_material(
        self, installed: Mapping[str, str | None], *, material_dir: str
    ) -> Command:
        directory = grammar.abs_path(material_dir)
        specs = [
            f"{grammar.debian_package(n)}={grammar.debian_version(v)}"
            for n, v in sorted(installed.items())
            if v is not None
        ]
        return Command(
            ("sh", "-c", _SECURE_SCRIPT, "patchgate-secure", directory, self.apt_cache, *specs),
            env=_NONINTERACTIVE,
            ok_exit=frozenset({0, 3}),  # 3: some versions could not be secured (see output)
            description="secure rollback material",
        )

    def parse_rollback_material(self, out: CommandOutput) -> Parsed[dict[str, str | None]]:
        return _parse_secured(self.secure_rollback_material({}, material_dir="/"), out)

    def rollback(
        self,
        snapshot: Mapping[str, str | None],
        *,
        material_dir: str,
        transaction: str | None = None,
    ) -> Command:
        directory = grammar.abs_path(material_dir)
        if not snapshot:
            raise InputError("empty rollback snapshot")
        specs = [
            f"{grammar.debian_package(n)}={grammar.debian_version(v)}"
            if v is not None
            else f"{grammar.debian_package(n)}-"
            for n, v in sorted(snapshot.items())
        ]
        return Command(
            ("sh", "-c", _ROLLBACK_SCRIPT, "patchgate-rollback", directory, *specs),
            env=_NONINTERACTIVE,
            retry_markers=APT_LOCK_MARKERS,
            description="apt-get install --allow-downgrades (rollback)",
        )

    def transaction_id(self) -> Command | None:
        return None

    def parse_transaction_id(self, out: CommandOutput) -> str | None:
        return None

    # --- reboot and preflight --------------------------------------------------------------

    def reboot_required(self) -> Command:
        return Command(("sh", "-c", _REBOOT_SCRIPT), sudo=False, description="reboot-required")

    def parse_reboot(self, out: CommandOutput) -> Parsed[RebootStatus]:
        check_ok(self.reboot_required(), out, "reboot-required check")
        text = common.lines(out.stdout)
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

    def parse_reboot_required(self, out: CommandOutput) -> bool:
        return self.parse_reboot(out).value.required

    def preflight_checks(self) -> list[Command]:
        return [
            Command(("dpkg", "--audit"), sudo=False, ok_exit=frozenset({0, 1}),
                    description="dpkg --audit"),
            Command(("dpkg-query", "-W", "-f=${db:Status-Abbrev}\\t${binary:Package}\\n"),
                    sudo=False, description="package states"),
            common.free_space_check(self.min_free_mb),
            common.lock_check(_DPKG_LOCKS),
        ]  # fmt: skip

    def parse_preflight(self, outputs: Sequence[CommandOutput]) -> list[str]:
        if len(outputs) != 4:
            raise ValueError("parse_preflight needs the outputs of the four preflight_checks")
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
        problems += common.parse_free_space(space, self.min_free_mb)
        problems += common.parse_locks(locks)
        return problems


def grammar_ok(name: str) -> bool:
    try:
        grammar.debian_package(name)
    except InputError:
        return False
    return True


def _parse_secured(command: Command, out: CommandOutput) -> Parsed[dict[str, str | None]]:
    check_ok(command, out, "securing rollback material")
    value: dict[str, str | None] = {}
    unparsed: list[str] = []
    for line in common.lines(out.stdout):
        parts = line.split(" ")
        if parts[0] == "SECURED" and len(parts) == 4:
            value[parts[1]] = parts[3]
        elif parts[0] == "MISSING" and len(parts) == 3:
            value[parts[1]] = None
        elif line.strip():
            unparsed.append(line)
    return Parsed(value, unparsed)

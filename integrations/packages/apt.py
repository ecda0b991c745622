"""apt/dpkg (Debian, Ubuntu): command builders and parsers.

- upgradable: ``apt-get -s -o Debug::NoLocking=1 dist-upgrade`` (stable output, no root,
  no lock); its ``Inst`` lines give current, candidate, origins and architecture. The
  parser also reads ``apt list --upgradable`` output (what operators often capture).
- security: an origin whose archive/suite ends in ``-security`` (``bookworm-security``,
  ``jammy-security``, ``Debian-Security:12/stable-security``).
- rollback material: the installed versions' ``.deb`` files copied from the apt cache,
  else ``apt-get download``, else ``dpkg-repack``, into ``material_dir`` as
  ``NAME_VERSION.deb`` (``:`` in the version written ``%3a``, as apt does).

The driver builds the commands; the shell scripts it runs are in apt_scripts.py and the
parsers of their output in apt_parsers.py (the driver checks the exit code first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from integrations.packages import apt_parsers as parsers
from integrations.packages import apt_scripts as scripts
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
from workflows.errors import InputError
from workflows.ports import Simulation, UpgradablePackage

__all__ = ["APT_LOCK_MARKERS", "AptDriver"]

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
        return parsers.parse_upgradable(out.stdout)

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
        return parsers.parse_installed(out, packages)

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
        return parsers.parse_simulation(out.stdout)

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
            ("sh", "-c", scripts.VERSIONS_SCRIPT, "patchgate-versions", *names),
            sudo=False,
            description="apt-cache show (pinned packages' versions)",
        )

    def parse_unavailable(
        self, out: CommandOutput, patchset: Mapping[str, str]
    ) -> Parsed[list[str]]:
        """``name=version`` of the pins apt cannot find (compared as dpkg does)."""
        check_ok(self.unavailable(patchset), out, "apt-cache show")
        return parsers.parse_unavailable(out.stdout, patchset)

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
            (
                "sh",
                "-c",
                scripts.SECURE_SCRIPT,
                "patchgate-secure",
                directory,
                self.apt_cache,
                *specs,
            ),
            env=_NONINTERACTIVE,
            ok_exit=frozenset({0, 3}),  # 3: some versions could not be secured (see output)
            description="secure rollback material",
        )

    def parse_rollback_material(self, out: CommandOutput) -> Parsed[dict[str, str | None]]:
        return common.parse_secured(self.secure_rollback_material({}, material_dir="/"), out)

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
            ("sh", "-c", scripts.ROLLBACK_SCRIPT, "patchgate-rollback", directory, *specs),
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
        return Command(
            ("sh", "-c", scripts.REBOOT_SCRIPT), sudo=False, description="reboot-required"
        )

    def parse_reboot(self, out: CommandOutput) -> Parsed[RebootStatus]:
        check_ok(self.reboot_required(), out, "reboot-required check")
        return parsers.parse_reboot(out.stdout)

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
        return parsers.parse_preflight(outputs, self.min_free_mb)

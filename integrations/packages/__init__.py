"""Package drivers: apt (Debian/Ubuntu), dnf/yum (RHEL family), zypper (SUSE).

Pure command builders and output parsers, separate from the transport: a driver
builds :class:`Command` values (argv tuples, never shell strings) and parses
:class:`CommandOutput` values; the executor in ``integrations/ssh`` runs them.

The interface (``base.py``)::

    Command(argv, sudo=True, env={}, ok_exit={0}, retry_exit=set(), retry_markers=(),
            description="")
        .full_argv()  ->  ("sudo", "-n", "--", "env", "LC_ALL=C", "K=V", ..., *argv)
        .shell()      ->  the same, every part shlex.quote-d: THE one place a command
                          line is built; LC_ALL=C is always set
        .outcome(out) ->  "ok" | "retry" (package db locked: back off and run again)
                          | "failed"
    CommandOutput(exit_code, stdout, stderr)
    Parsed[T](value, unparsed: list[str], notes: list[str])
        unparsed: lines not understood (report them); notes: understood and worth
        telling (kept back, deferred by phasing, obsoleted, would remove ...)
    SecurityInfo(package, version, advisories, severity, cves)
    RebootStatus(required, packages)

    PackageDriver (Protocol), name in {"apt", "dnf", "yum", "zypper"}:
        refresh() -> Command
        list_upgradable() -> Command;  parse_upgradable(out) -> Parsed[list[UpgradablePackage]]
        security_updates() -> Command | None   (None for apt: the origin in list_upgradable
                                                marks security; feed that output to
                                                parse_security)
        parse_security(out) -> Parsed[dict[str, SecurityInfo]]
        installed(pkgs) -> Command;  parse_installed(out, pkgs) -> Parsed[dict[str, str|None]]
        simulate(specs) -> Command;  parse_simulation(out) -> Parsed[Simulation]
        install_exact(patchset) -> Command                 (exact versions, never "latest")
        secure_rollback_material(installed, material_dir=) -> Command
        parse_rollback_material(out) -> Parsed[dict[str, str|None]]   (None = not secured)
        transaction_id() -> Command | None;  parse_transaction_id(out) -> str | None
                                                (dnf/yum history id, run after the apply)
        rollback(snapshot, material_dir=, transaction=None) -> Command
        reboot_required() -> Command;  parse_reboot(out) -> Parsed[RebootStatus]
                                       parse_reboot_required(out) -> bool
        preflight_checks() -> list[Command];  parse_preflight(outputs) -> list[str]
                                       (outputs in the same order; empty list = ok)

    driver_for(package_manager) -> PackageDriver      (InputError for an unknown one)

Builders validate every package name, version, path and id against ``grammar.py`` and
raise ``workflows.errors.InputError``; parsers raise ``CommandFailed`` (host ``"?"``)
when given an output whose exit code the command does not accept.
"""

from __future__ import annotations

from integrations.packages.apt import AptDriver
from integrations.packages.base import (
    Command,
    CommandOutput,
    PackageDriver,
    Parsed,
    RebootStatus,
    SecurityInfo,
)
from integrations.packages.dnf import DnfDriver
from integrations.packages.zypper import ZypperDriver
from workflows.errors import InputError

__all__ = [
    "Command",
    "CommandOutput",
    "PackageDriver",
    "Parsed",
    "RebootStatus",
    "SecurityInfo",
    "driver_for",
]

MANAGERS = ("apt", "dnf", "yum", "zypper")


def driver_for(package_manager: str) -> PackageDriver:
    """The driver for a package manager named in HostFacts."""
    if package_manager == "apt":
        return AptDriver()
    if package_manager in ("dnf", "yum", "dnf5"):
        return DnfDriver(package_manager)
    if package_manager == "zypper":
        return ZypperDriver()
    raise InputError(f"unknown package manager {package_manager!r} (known: {', '.join(MANAGERS)})")

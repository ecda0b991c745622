"""dnf (dnf4 and dnf5) and yum (RHEL family): command builders and parsers.

- upgradable: ``check-update`` (exit 100 = updates, 0 = none, 1 = error); long names
  wrap onto the next line; "Obsoleting Packages" blocks are notes, not updates. It
  prints no installed version: the executor fills ``current`` with ``installed()``.
- security: ``updateinfo list --security`` run twice, plain and ``--with-cve``, so each
  package gets its advisory ids, severity and CVEs (dnf5's ``advisory list`` too).
- rollback: ``history undo <transaction>`` when the apply's transaction id is known,
  falling back to ``downgrade`` of the kept rpms (or the repository) and ``remove`` of
  the packages that were absent.

The driver builds the commands; the parsers of their output are in dnf_parsers.py.
"""

from __future__ import annotations

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
from integrations.packages.dnf_parsers import (
    parse_check_update,
    parse_needs_restarting,
    parse_repoquery,
    parse_transaction_table,
    parse_updateinfo,
)
from workflows.errors import CommandFailed, InputError
from workflows.ports import Simulation, UpgradablePackage

__all__ = [
    "DNF_LOCK_MARKERS",
    "DnfDriver",
    "parse_needs_restarting",
    "parse_repoquery",
    "parse_transaction_table",
    "parse_updateinfo",
]

DNF_LOCK_MARKERS = (
    "Failed to obtain the transaction lock",
    "Another app is currently holding the yum lock",
    "waiting for process with pid",
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

# dnf (4, and yum) exits 0 when a scriptlet fails: rpm only warns ("%post(demo-app-1.3-1)
# scriptlet failed, exit status 1"), dnf adds "Error in POSTIN scriptlet in rpm package …",
# the transaction is recorded complete. The package is in the rpm database, its service
# may be half set up: for PatchGate that is a failed apply (exit 1), like apt's postinst.
_INSTALL = r"""
tool=$1; shift
log=$(mktemp) || exit 2
"$tool" "$@" >"$log" 2>&1; rc=$?
cat -- "$log"
if [ "$rc" = 0 ] && grep -q -e 'scriptlet failed' -e '^Error in [A-Z]* scriptlet' "$log"; then
  echo "patchgate: a package scriptlet failed ($tool exited 0)" >&2; rc=1
fi
rm -f -- "$log"
exit "$rc"
"""
INSTALL_SCRIPT_ARGS = 4  # ("sh", "-c", script, "patchgate-install"): the tool's argv follows

_REPOQUERY_QF = "%{name} %{epoch} %{version} %{release}\\n"  # dnf5 adds no newline itself


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
        return parse_check_update(out.stdout)

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
            # dnf refuses install, even with --assumeno, to anyone but root (exit 1,
            # "This command has to be run with superuser privileges")
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
        """``<program> -y install name-evr…``, failing (exit 1) when a scriptlet failed."""
        return Command(
            ("sh", "-c", _INSTALL, "patchgate-install", self.program, "-y", "install",
             *rpm.specs(patchset)),
            retry_markers=DNF_LOCK_MARKERS,
            description="install exact",
        )  # fmt: skip

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
        return common.parse_secured(self.secure_rollback_material({}, material_dir="/"), out)

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

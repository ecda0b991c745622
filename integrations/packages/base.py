"""The driver interface: commands as argv tuples, outputs, parse results, the Protocol.

Everything here is pure: a driver builds :class:`Command` values and parses
:class:`CommandOutput` values; the executor (``integrations/ssh``) runs them.
``Command.shell()`` is the one place a command line is built.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from workflows.errors import CommandFailed
from workflows.ports import Simulation, UpgradablePackage

T = TypeVar("T")

_ENV_KEY = re.compile(r"[A-Z_][A-Z0-9_]*")

Outcome = Literal["ok", "retry", "failed"]


@dataclass(frozen=True)
class Command:
    """A program and its arguments (never a shell string) and how to judge its exit.

    ``retry_exit`` / ``retry_markers``: an exit code, or a substring of stdout/stderr
    together with a non-ok exit, meaning "the package database is locked by another
    process": the executor retries with backoff.
    """

    argv: tuple[str, ...]
    sudo: bool = True
    env: Mapping[str, str] = field(default_factory=dict)
    ok_exit: frozenset[int] = frozenset({0})
    retry_exit: frozenset[int] = frozenset()
    retry_markers: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not self.argv or not all(isinstance(a, str) for a in self.argv):
            raise ValueError("a command needs a program and string arguments")
        for key, value in self.env.items():
            if not _ENV_KEY.fullmatch(key) or "\x00" in value:
                raise ValueError(f"bad environment variable name {key!r}")
        if any("\x00" in a for a in self.argv):
            raise ValueError("NUL byte in an argument")

    def full_argv(self) -> tuple[str, ...]:
        """The argv as run on the host: ``[sudo -n --] env LC_ALL=C K=V … program args``."""
        env = {"LC_ALL": "C", **{k: v for k, v in self.env.items() if k != "LC_ALL"}}
        prefix: tuple[str, ...] = ("sudo", "-n", "--") if self.sudo else ()
        assignments = tuple(f"{k}={v}" for k, v in env.items())
        return (*prefix, "env", *assignments, *self.argv)

    def shell(self) -> str:
        """The command line for a POSIX shell; every part is ``shlex.quote``-d."""
        return " ".join(shlex.quote(part) for part in self.full_argv())

    def outcome(self, out: CommandOutput) -> Outcome:
        if out.exit_code in self.ok_exit:
            return "ok"
        if out.exit_code in self.retry_exit:
            return "retry"
        if self.retry_markers:
            text = out.stdout + "\n" + out.stderr
            if any(marker in text for marker in self.retry_markers):
                return "retry"
        return "failed"


@dataclass(frozen=True)
class CommandOutput:
    exit_code: int
    stdout: str
    stderr: str = ""

    def tail(self, lines: int = 20) -> str:
        text = "\n".join(part for part in (self.stdout.rstrip(), self.stderr.rstrip()) if part)
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """A parse result. ``unparsed``: lines not understood (reported, never dropped);
    ``notes``: things understood but worth telling (kept back, phased, obsoleted...)."""

    value: T
    unparsed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SecurityInfo:
    """Why an update is a security update: advisory ids, severity, CVEs (as far as known)."""

    package: str
    version: str | None = None
    advisories: tuple[str, ...] = ()
    severity: str | None = None
    cves: tuple[str, ...] = ()


@dataclass(frozen=True)
class RebootStatus:
    required: bool
    packages: tuple[str, ...] = ()


class PackageDriver(Protocol):
    """One package manager's commands and parsers. Pure: no I/O.

    Every method that takes package names or versions validates them against
    ``integrations.packages.grammar`` and raises ``InputError`` on a bad one.
    Parsers take the output of the command the matching builder made, with an exit
    code the command's ``outcome`` judged ``ok``; a parser given a failed output
    raises ``CommandFailed`` (host ``"?"``: the executor re-raises with the host).
    """

    name: str

    def refresh(self) -> Command: ...

    def list_upgradable(self) -> Command: ...

    def parse_upgradable(self, out: CommandOutput) -> Parsed[list[UpgradablePackage]]: ...

    def security_updates(self) -> Command | None:
        """None when security comes from list_upgradable's output itself (apt)."""
        ...

    def parse_security(self, out: CommandOutput) -> Parsed[dict[str, SecurityInfo]]: ...

    def installed(self, packages: Sequence[str]) -> Command: ...

    def parse_installed(
        self, out: CommandOutput, packages: Sequence[str]
    ) -> Parsed[dict[str, str | None]]: ...

    def simulate(self, packages: Sequence[str]) -> Command:
        """``packages``: names or ``name=version`` specs."""
        ...

    def parse_simulation(self, out: CommandOutput) -> Parsed[Simulation]: ...

    def install_exact(self, patchset: Mapping[str, str]) -> Command: ...

    def unavailable(self, patchset: Mapping[str, str]) -> Command:
        """A preflight check: which pinned versions the repositories no longer offer."""
        ...

    def parse_unavailable(
        self, out: CommandOutput, patchset: Mapping[str, str]
    ) -> Parsed[list[str]]:
        """``name=version`` for each pin that cannot be installed any more."""
        ...

    def secure_rollback_material(
        self, installed: Mapping[str, str | None], *, material_dir: str
    ) -> Command: ...

    def parse_rollback_material(self, out: CommandOutput) -> Parsed[dict[str, str | None]]:
        """package -> where its installed version is kept (None: could not be secured)."""
        ...

    def rollback(
        self, snapshot: Mapping[str, str | None], *, material_dir: str, transaction: str | None
    ) -> Command: ...

    def transaction_id(self) -> Command | None:
        """A command printing the last transaction's id (dnf), run right after the apply;
        None where the manager has no transaction history to undo (apt, zypper)."""
        ...

    def parse_transaction_id(self, out: CommandOutput) -> str | None: ...

    def reboot_required(self) -> Command: ...

    def parse_reboot(self, out: CommandOutput) -> Parsed[RebootStatus]: ...

    def preflight_checks(self) -> list[Command]: ...

    def parse_preflight(self, outputs: Sequence[CommandOutput]) -> list[str]: ...


def check_ok(command: Command, out: CommandOutput, what: str) -> None:
    """Raise CommandFailed unless ``out`` is a success for ``command``."""
    if command.outcome(out) != "ok":
        raise CommandFailed("?", f"{what} failed", exit_code=out.exit_code, output_tail=out.tail())


def split_spec(spec: str) -> tuple[str, str | None]:
    """``name=version`` -> (name, version); ``name`` -> (name, None)."""
    name, sep, version = spec.partition("=")
    return name, (version if sep else None)

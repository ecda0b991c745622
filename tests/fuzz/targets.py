"""Fuzz targets shared by the hypothesis properties (tests/fuzz/test_*.py) and the
coverage-guided atheris runner (tests/fuzz/atheris_main.py).

Every target takes the raw input (``bytes``; text targets decode it leniently), feeds it
to one entry point of PatchGate that reads untrusted text, and lets only the error type
that entry point documents escape into :func:`check`, which swallows it after checking
that its message is non-empty. Anything else (a ``KeyError``, ``AttributeError``,
``TypeError``, a ``RecursionError``, a hang caught by :func:`no_hang`) propagates: that is
a finding.

The invariant, for every target: bad input raises only the project's own documented
error (with a message), never an unexpected exception, and never hangs.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from integrations.advisories import load_kev, parse_osv, records_from_security
from integrations.advisories.osv import AdvisoryDataError
from integrations.inventory.sources import load_file
from integrations.packages.apt import AptDriver
from integrations.packages.base import CommandOutput
from integrations.packages.dnf import (
    DnfDriver,
    parse_needs_restarting,
    parse_transaction_table,
    parse_updateinfo,
)
from integrations.packages.versions import compare_debian, compare_rpm
from integrations.packages.zypper import ZypperDriver
from workflows.errors import CommandFailed, InputError, InventoryError, PlanError, SelectorError
from workflows.plans import load_plan, parse_selector
from workflows.ports import InventoryHost

HANG_SECONDS = 10.0  # far above any real parse; only a hang gets near it


class Hang(Exception):
    """A target ran longer than HANG_SECONDS on one input."""


@contextlib.contextmanager
def no_hang(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread if the body runs longer than ``seconds``."""

    def alarm(signum: int, frame: object) -> None:
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def text_of(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


@contextlib.contextmanager
def expected(*errors: type[BaseException]) -> Iterator[None]:
    """Swallow the documented errors (after checking they carry a message)."""
    try:
        yield
    except errors as exc:
        if not str(exc).strip():
            raise AssertionError(f"{type(exc).__name__} without a message") from exc


# --- scratch files ------------------------------------------------------------------------


SHM = Path("/dev/shm")


@cache
def _scratch() -> Path:
    """A per-process scratch directory, removed at exit; in memory (``/dev/shm``) where
    the machine has one: the file targets write one file per example, and on a disk
    each rewrite costs a flush or a discard (milliseconds; far more on a busy disk)."""
    base = str(SHM) if SHM.is_dir() and os.access(SHM, os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="pg-fuzz-", dir=base))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def scratch_file(name: str, data: bytes) -> Path:
    """A file in the scratch directory (replaced on each call). Removed, then written
    anew: truncating and rewriting a file makes ext4 flush it on close
    (``auto_da_alloc``) where the scratch directory is on a disk."""
    path = _scratch() / name
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    return path


# --- targets ------------------------------------------------------------------------------


@cache
def _registry() -> Any:
    from bot.slack.commands.handlers import default_registry

    return default_registry()


def slash_command(data: bytes) -> None:
    """``/patch TEXT``: a UsageError (shown with the usage line) or a typed command."""
    from bot.slack.commands.parser import parse
    from bot.slack.commands.registry import UsageError

    with expected(UsageError):  # the handler answers UsageError; anything else is a 500
        parse(text_of(data), _registry())


def _slack_ids(node: Any, key: str = "") -> Iterator[str]:
    """Values of the plan's Slack ID fields (channel, users, groups...)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _slack_ids(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _slack_ids(v, key)
    elif isinstance(node, str) and key in ("channel", "users", "groups", "user_groups"):
        yield node


def plan_file(data: bytes) -> None:
    """A plan file: a PatchPlan or a PlanError of located lines."""
    path = scratch_file("plan.yml", data)
    with expected(PlanError):
        plan = load_plan(path)
        # what the plan accepted is all of it in the documented grammar (no "weekly\n")
        assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", plan.name), plan.name
        for ring in plan.rings:
            assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", ring.name), ring.name
            assert parse_selector(str(ring.hosts)) == ring.hosts
        for ident in _slack_ids(plan.model_dump(mode="json")):
            assert re.fullmatch(r"[A-Z][A-Z0-9]{2,}", ident), ident


_INVENTORY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:%-]*")


def _inventory(suffix: str) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        path = scratch_file(f"inventory{suffix}", data)
        with expected(InventoryError):
            hosts = load_file(path)
            for host in hosts:
                # the inventory's documented name grammar, all of the name (no newline)
                assert _INVENTORY_NAME.fullmatch(host.name), host.name
                assert isinstance(host.port, int), host

    target.__name__ = f"inventory{suffix.replace('.', '_') or '_no_suffix'}"
    return target


inventory_yaml = _inventory(".yml")
inventory_ini = _inventory(".ini")
inventory_csv = _inventory(".csv")
inventory_by_content = _inventory("")

_HOSTS = (
    InventoryHost(name="web-01", groups=frozenset({"web", "prod"}), tags=frozenset({"pci"}),
                  environment="production"),
    InventoryHost(name="db-02", groups=frozenset({"db"}), environment="staging"),
    InventoryHost(name="x", groups=frozenset()),
)  # fmt: skip


def selector(data: bytes) -> None:
    """A selector: a SelectorError naming a column, or an AST that prints back to itself."""
    text = text_of(data)
    with expected(SelectorError):
        parsed = parse_selector(text)
        again = parse_selector(str(parsed))
        assert again == parsed, (text, str(parsed))
        for host in _HOSTS:
            assert parsed.matches(host) == again.matches(host)


_EXITS = (0, 1, 100, 101, 104, 106, 7, 2, 255)


def _outputs(data: bytes) -> list[CommandOutput]:
    """One input split into a few command outputs (exit code from the first byte)."""
    if not data:
        return [CommandOutput(0, "")]
    exit_code = _EXITS[data[0] % len(_EXITS)]
    parts = text_of(data[1:]).split("\x1e")  # record separator: stdout / stderr / next
    outs = []
    for i in range(0, max(len(parts), 1), 2):
        outs.append(CommandOutput(exit_code, parts[i], parts[i + 1] if i + 1 < len(parts) else ""))
    return outs


_DEB_PACKAGES = ("openssl", "libc6", "demo-app", "demo-app:i386")
_RPM_PACKAGES = ("openssl", "kernel", "openssl-libs", "glibc.i686")


def _each_parser(
    driver: Any, data: bytes, *, extra: tuple[Callable[[CommandOutput], Any], ...] = ()
) -> None:
    outs = _outputs(data)
    out = outs[0]
    packages = _DEB_PACKAGES if driver.name == "apt" else _RPM_PACKAGES
    checks = len(driver.preflight_checks())
    preflight = (outs * checks)[:checks]
    parsers: list[Callable[[CommandOutput], Any]] = [
        driver.parse_upgradable,
        driver.parse_security,
        lambda o: driver.parse_installed(o, packages),
        driver.parse_simulation,
        driver.parse_rollback_material,
        driver.parse_transaction_id,
        driver.parse_reboot,
        driver.parse_reboot_required,
        *extra,
    ]
    for parse in parsers:
        with expected(CommandFailed):
            result = parse(out)
            if hasattr(result, "unparsed"):
                assert all(isinstance(line, str) for line in result.unparsed)
    with expected(CommandFailed):
        problems = driver.parse_preflight(preflight)
        assert all(isinstance(p, str) and p for p in problems)


def apt_output(data: bytes) -> None:
    _each_parser(AptDriver(), data)


def dnf_output(data: bytes) -> None:
    _each_parser(
        DnfDriver("dnf"),
        data,
        extra=(
            parse_updateinfo,
            lambda o: parse_transaction_table(o.stdout),
            parse_needs_restarting,
        ),
    )


def zypper_output(data: bytes) -> None:
    _each_parser(ZypperDriver(), data)


def osv_record(data: bytes) -> None:
    """One OSV JSON document (the loader has already decoded it: JSON errors are its own)."""
    try:
        document = json.loads(text_of(data))
    except (ValueError, RecursionError):
        return
    with expected(AdvisoryDataError):
        for record in parse_osv(document, where="fuzz.json"):
            for name, fixed in record.packages.items():
                assert isinstance(name, str)
                if fixed is not None:
                    compare_debian(fixed, "1.0")  # assessment compares fixed versions
                    compare_rpm(fixed, "1.0")


def kev_catalogue(data: bytes) -> None:
    path = scratch_file("kev.json", data)
    with expected(AdvisoryDataError):
        load_kev(path)


def host_advisories(data: bytes) -> None:
    """dnf updateinfo / zypper patches as parsed on a host, into advisory records."""
    for parse in (parse_updateinfo, ZypperDriver().parse_security):
        with expected(CommandFailed):
            infos = parse(CommandOutput(0, text_of(data))).value
            records_from_security(infos, host="fuzz")


def debian_versions(data: bytes) -> None:
    """Two Debian versions from the package data: -1/0/1, antisymmetric."""
    a, _, b = text_of(data).partition("\x00")
    with expected(InputError):
        ab, ba = compare_debian(a, b), compare_debian(b, a)
        assert ab in (-1, 0, 1) and ab == -ba, (a, b, ab, ba)


def rpm_versions(data: bytes) -> None:
    a, _, b = text_of(data).partition("\x00")
    with expected(InputError):
        ab, ba = compare_rpm(a, b), compare_rpm(b, a)
        assert ab in (-1, 0, 1) and ab == -ba, (a, b, ab, ba)


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    seeds: tuple[str, ...] = ()  # fixture files (under tests/fixtures) to start from


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("slash_command", slash_command),
        Target("plan_file", plan_file, ("../../examples",)),
        Target("inventory_yaml", inventory_yaml, ("inventory",)),
        Target("inventory_ini", inventory_ini, ("inventory",)),
        Target("inventory_csv", inventory_csv, ("inventory",)),
        Target("inventory_by_content", inventory_by_content, ("inventory",)),
        Target("selector", selector),
        Target("apt_output", apt_output, ("packages",)),
        Target("dnf_output", dnf_output, ("packages",)),
        Target("zypper_output", zypper_output, ("packages",)),
        Target("osv_record", osv_record, ("advisories/osv",)),
        Target("kev_catalogue", kev_catalogue, ("advisories",)),
        Target("host_advisories", host_advisories, ("packages",)),
        Target("debian_versions", debian_versions),
        Target("rpm_versions", rpm_versions),
    )
}


def seed_files(target: Target) -> list[Path]:
    found: list[Path] = []
    for rel in target.seeds:
        base = (FIXTURES / rel).resolve()
        if base.is_dir():
            found.extend(
                p for p in sorted(base.rglob("*")) if p.is_file() and p.stat().st_size < 200_000
            )
    return found


def fixture_lines() -> list[str]:
    """Every line of every package/inventory fixture: material to splice into outputs."""
    lines: list[str] = []
    for sub in ("packages", "inventory", "advisories"):
        for path in sorted((FIXTURES / sub).rglob("*")):
            if path.is_file() and path.stat().st_size < 200_000:
                with contextlib.suppress(UnicodeDecodeError):
                    lines.extend(path.read_text(encoding="utf-8").splitlines())
    return lines


def env_budget(default: int) -> int:
    """Examples per target: ``PATCHGATE_FUZZ_EXAMPLES`` overrides the CI default."""
    return int(os.environ.get("PATCHGATE_FUZZ_EXAMPLES", default))

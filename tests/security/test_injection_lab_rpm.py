"""Injection on a real host, rpm drivers: hostile package names and versions given to the
yum and dnf5 drivers never reach a shell unquoted and never change the command run on the
host; and (run by the real-tool modules, tests/lab_tests/test_lab_dnf.py and
test_lab_zypper.py, through :func:`hostile_values_on_a_real_host`) the same for dnf and
zypper on hosts with the real package managers.

yum and dnf5 exist nowhere in the lab (Debian carries neither), so for them the lab host
is Debian with ``yum``, ``dnf5``, ``rpm`` and ``needs-restarting``
stand-ins (tests/lab/rpm_stubs.py) that record their exact argv and answer with the
captured outputs the driver unit tests parse; sshd's command lines and sudo's argv are
recorded as for apt (tests/security/cmdlog.py). Everything else is real: the SSH
executor, sshd, sudo, ``sh -c`` scripts, the detached runner. dnf and zypper ran here on
stand-ins too until the real-tool lab hosts existed (issue 18); they are no longer
parametrised here.

For each operation that takes package names or versions (installed, simulate,
preflight, apply, rollback) a value is either refused with ``InputError`` before any
command that mentions it is sent (the commands sent before the refusal are exactly
those that do not depend on it), or every recorded line and argv is exactly what the
driver built, the value arriving as one whole argument. A value with a shell
metacharacter, blank, quote, non-ASCII character or a leading dash is never accepted,
and no canary file appears.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.packages import Command, PackageDriver, driver_for
from integrations.packages.dnf import INSTALL_SCRIPT_ARGS, DnfDriver
from integrations.ssh import SshExecutor, SshOptions
from integrations.ssh.executor import MATERIAL_DIR
from tests.fuzz.strategies import HOSTILE
from tests.lab import rpm_stubs
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from tests.lab.kit import executor as lab_executor
from tests.lab.kit import inventory_host
from tests.security import cmdlog
from tests.security.test_injection_lab import CANARIES, PWNED
from workflows.errors import InputError
from workflows.ports import InventoryHost

# Only the stand-ins can run these two; dnf and zypper run on real hosts (see above).
MANAGERS = ("yum", "dnf5")
OPERATIONS = ("installed", "simulate", "preflight", "apply", "rollback")
# What a name or version may hold once accepted: the rpm grammars' characters, no
# leading dash. Anything else (metacharacters, blanks, quotes, unicode) must be refused.
PLAIN = re.compile(r"[A-Za-z0-9_+.~^:-]+")

BAD_NAMES = (
    *(f"demo-app{c}" for c in CANARIES),
    "--oldpackage", "-y", "--setopt=gpgcheck=0", "-demo-app", "demo-app 1.1", "demo-app'",
    'demo-app"', "démo-app", "demo-app\u200b", "demo-app\n", "", "a" * 300, "demo-*",
    "@core", "demo-app>=1.0", "demo-app=1.0", "/etc/passwd", "~demo", "demo-app;id",
)  # fmt: skip
BAD_VERSIONS = (
    *(f"1.1-1{c}" for c in CANARIES[:6]), "--force", "-1.1", "1.1 2.0", "1.1\n", "1.1`id`",
    "1.1|id", "1.1-1-1", "1:", ":1.1", "1.1\u00a0", "", "1.1*", "1.1?", "1.1/../x",
)  # fmt: skip


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    machine = lab.host("lab-sec-rpm", 43)
    machine.prepare()
    cmdlog.install(machine)
    rpm_stubs.install(machine)
    try:
        machine.start()
        yield machine
    finally:
        machine.stop()


@pytest.fixture
def executor(host: LabHost, tmp_path: Path) -> Iterator[SshExecutor]:
    kh = tmp_path / "known_hosts"
    kh.write_text(host.known_hosts_line + "\n")
    ex = SshExecutor(SshOptions(known_hosts=kh, concurrency=2, command_timeout=60,
                                connect_timeout=5, poll_interval=0.2))  # fmt: skip
    try:
        yield ex
    finally:
        ex.close()


def inventory(lab: Lab, host: LabHost, manager: str) -> InventoryHost:
    return InventoryHost(
        name=host.name, address=host.address, port=host.port, user="patchgate",
        private_key_file=str(lab.client_key), groups=frozenset({"lab"}),
        vars={"package_manager": manager},
    )  # fmt: skip


def fresh(host: LabHost) -> None:
    """Empty every record and put the stand-ins' package state back (one nsenter)."""
    state = " ".join(f"{n}={v}" for n, v in rpm_stubs.INITIAL.items())
    host.sh(
        ": > /var/log/pg/ssh.log; : > /var/log/pg/argv.log; "
        f": > {rpm_stubs.LOG}; printf '%s\\n' {state} > {rpm_stubs.STATE}; "
        f"rm -rf {MATERIAL_DIR} /var/cache/zypp/packages /var/lib/patchgate/ops"
    )


def not_pwned(host: LabHost) -> bool:
    return host.sh(f"test -e {PWNED} && echo yes || echo no").strip() == "no" and not (
        Path(PWNED).exists()
    )


def call(command: Command) -> tuple[str, list[str]]:
    return command.argv[0], list(command.argv[1:])


def install_call(command: Command) -> tuple[str, list[str]]:
    """The stand-in call of an install (dnf's runs inside a script that checks its output)."""
    if command.argv[0] == "sh":
        return call(Command(command.argv[INSTALL_SCRIPT_ARGS:]))
    return call(command)


def program(driver: PackageDriver) -> str:
    return driver.program if isinstance(driver, DnfDriver) else "zypper"


def refresh_and_checks(driver: PackageDriver) -> list[Command]:
    return [driver.refresh(), *driver.preflight_checks()]


def stand_in_calls(commands: list[Command]) -> list[tuple[str, list[str]]]:
    """The stand-in calls these commands make when run directly (not the sh scripts)."""
    return [call(c) for c in commands if c.argv[0] in rpm_stubs.PROGRAMS]


def without_polls(lines: list[str]) -> list[str]:
    """The lines sshd ran, minus the detached runner's status polls (their number varies)."""
    return [line for line in lines if "patchgate-status" not in line]


# --- one operation, its expected commands -------------------------------------------------


@dataclass
class Case:
    manager: str
    operation: str
    name: str
    version: str

    @property
    def driver(self) -> PackageDriver:
        return driver_for(self.manager)

    def run(self, executor: SshExecutor, target: InventoryHost) -> Awaitable[object]:
        spec = {self.name: self.version}
        runs: dict[str, Callable[[], Awaitable[object]]] = {
            "installed": lambda: executor.installed(target, [self.name]),
            "simulate": lambda: executor.simulate(target, [f"{self.name}={self.version}"]),
            "preflight": lambda: executor.preflight(target, spec),
            "apply": lambda: executor.apply(target, spec, op_id=uuid.uuid4().hex),
            "rollback": lambda: executor.rollback(target, spec),
        }
        return runs[self.operation]()

    def sent_before_refusal(self) -> list[Command]:
        """What the executor may send before it meets the bad value: only commands that
        do not contain it (facts of the host, the package database state)."""
        d = self.driver
        name_ok = _valid(lambda: d.installed([self.name]))
        if self.operation == "preflight":
            return [*refresh_and_checks(d), *([d.installed([self.name])] if name_ok else [])]
        if self.operation == "apply" and name_ok:
            return [d.installed([self.name])]
        return []

    def expected_lines(self) -> list[str]:
        """Every line sshd runs for an accepted value (status polls left out); the
        detached launcher's line ends with the package command's own quoted line."""
        d, spec = self.driver, {self.name: self.version}
        installed = d.installed([self.name]).shell()
        if self.operation == "installed":
            return [installed]
        if self.operation == "simulate":
            return [d.simulate([f"{self.name}={self.version}"]).shell()]
        if self.operation == "preflight":
            return [c.shell() for c in refresh_and_checks(d)] + [
                installed, d.unavailable(spec).shell()]  # fmt: skip
        if self.operation == "apply":
            return [installed, "…" + d.install_exact(spec).shell(), installed,
                    d.reboot_required().shell()]  # fmt: skip
        rollback = d.rollback(spec, material_dir=MATERIAL_DIR, transaction=None)
        return ["…" + rollback.shell(), installed]

    def expected_calls(self) -> list[tuple[str, list[str]]]:
        """Every stand-in call for an accepted value, in order."""
        d, spec, prog = self.driver, {self.name: self.version}, program(self.driver)
        installed = call(d.installed([self.name]))
        if self.operation == "installed":
            return [installed]
        if self.operation == "simulate":
            return [call(d.simulate([f"{self.name}={self.version}"]))]
        if self.operation == "preflight":
            return [*stand_in_calls(refresh_and_checks(d)), installed, call(d.unavailable(spec))]
        if self.operation == "apply":
            return [installed, install_call(d.install_exact(spec)), installed,
                    call(d.reboot_required())]  # fmt: skip
        if prog == "zypper":
            undo = ["--non-interactive", "--no-color", "install", "--oldpackage",
                    "--force-resolution", "--allow-unsigned-rpm", "--",
                    f"{self.name}={self.version}"]  # fmt: skip
        else:
            undo = ["-y", "downgrade", f"{self.name}-{self.version}"]
        return [(prog, undo), installed]


def _valid(build: Callable[[], object]) -> bool:
    try:
        build()
    except InputError:
        return False
    return True


def matches(lines: list[str], expected: list[str]) -> bool:
    if len(lines) != len(expected):
        return False
    return all(
        line.endswith(" " + want[1:]) if want.startswith("…") else line == want
        for line, want in zip(lines, expected, strict=True)
    )


async def check(case: Case, host: LabHost, executor: SshExecutor, target: InventoryHost) -> str:
    """Run one case; assert it was refused cleanly or ran exactly as built."""
    fresh(host)
    refused: InputError | None = None
    try:
        await case.run(executor, target)
    except InputError as exc:
        refused = exc
    lines = without_polls(cmdlog.ssh_commands(host))
    calls = rpm_stubs.calls(host)
    used = [case.name] if case.operation == "installed" else [case.name, case.version]
    hostile = any(not PLAIN.fullmatch(v) or v.startswith("-") for v in used)
    if refused is not None:
        assert "not a valid" in str(refused), refused
        before = case.sent_before_refusal()
        assert lines == [c.shell() for c in before], (case, lines)
        assert calls == stand_in_calls(before), (case, calls)
        return "refused"
    assert not hostile, f"accepted a hostile value: {case}"
    assert matches(lines, case.expected_lines()), (case, lines, case.expected_lines())
    assert calls == case.expected_calls(), (case, calls)
    # independently of what the driver built: the values are whole arguments on the host
    whole = f"{case.name}{'=' if case.manager == 'zypper' else '-'}{case.version}"
    index, value = {
        "installed": (0, case.name), "simulate": (0, whole), "preflight": (-1, case.name),
        "apply": (1, whole), "rollback": (0, whole),
    }[case.operation]  # fmt: skip
    assert calls[index][1][-1] == value, (case, calls)
    return "accepted"


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("manager", MANAGERS)
async def test_the_recorders_see_every_rpm_driver_command_argument_by_argument(
    lab: Lab, host: LabHost, executor: SshExecutor, manager: str
) -> None:
    """The positive control: list, preflight, apply and roll back demo-app through the
    real executor; each stand-in saw exactly the argv the driver built."""
    target, d = inventory(lab, host, manager), driver_for(manager)
    prog = program(d)
    fresh(host)

    listed = {p.name: p for p in await executor.list_upgradable(target)}
    security = d.security_updates()
    assert security is not None
    assert listed["bind-libs"].candidate == "32:9.16.23-14.el9_3.4"
    assert listed["bind-libs"].security is (prog != "dnf5")  # dnf5's fixture: Fedora's
    words = ["advisory", "list", "--security"] if prog == "dnf5" else [
        "updateinfo", "list", "--security", "--available"]  # fmt: skip
    sec_calls = [(prog, ["-q", *words]), (prog, ["-q", *words, "--with-cve"])]
    # check-update prints no installed version: the executor asks rpm for it
    unknown = [call(d.installed(list(listed)))]
    assert rpm_stubs.calls(host) == [
        call(d.refresh()), call(d.list_upgradable()), *unknown, *sec_calls
    ]  # fmt: skip

    fresh(host)
    pin = {"demo-app": "1.1-1.el9"}
    pre = await executor.preflight(target, pin)
    assert pre.ok and not pre.unavailable and not pre.rollback_material_missing, pre
    download = ["-q", "-y", "download", "--destdir", MATERIAL_DIR, "--", "demo-app-1.0-1.el9"]
    assert rpm_stubs.calls(host) == [
        *stand_in_calls(refresh_and_checks(d)), call(d.installed(["demo-app"])),
        call(d.unavailable(pin)), (prog, download),
    ]  # fmt: skip

    cmdlog.clear(host)
    rpm_stubs.clear(host)
    applied = await executor.apply(target, pin, op_id=uuid.uuid4().hex)
    assert applied.ok, applied.output_tail
    assert applied.before == {"demo-app": "1.0-1.el9"}
    assert applied.after == {"demo-app": "1.1-1.el9"}
    install = d.install_exact(pin)
    assert rpm_stubs.calls(host) == Case(manager, "apply", "demo-app", "1.1-1.el9").expected_calls()
    assert list(install.full_argv()[1:]) in cmdlog.argvs(host, "sudo")
    assert matches(without_polls(cmdlog.ssh_commands(host)),
                   Case(manager, "apply", "demo-app", "1.1-1.el9").expected_lines())  # fmt: skip

    cmdlog.clear(host)
    rpm_stubs.clear(host)
    back = {"demo-app": "1.0-1.el9"}
    rolled = await executor.rollback(target, back)
    assert rolled.ok, rolled.output_tail
    assert rolled.after == back
    kept = f"{MATERIAL_DIR}/demo-app-1.0-1.el9.noarch.rpm"  # secured by the preflight
    undo = ["-y", "downgrade", kept]
    assert rpm_stubs.calls(host) == [(prog, undo), call(d.installed(["demo-app"]))]
    rollback = d.rollback(back, material_dir=MATERIAL_DIR, transaction=None)
    assert list(rollback.full_argv()[1:]) in cmdlog.argvs(host, "sudo")
    assert not_pwned(host)


@pytest.mark.parametrize("manager", MANAGERS)
async def test_hostile_names_and_versions_are_refused_before_any_command_names_them(
    lab: Lab, host: LabHost, executor: SshExecutor, manager: str
) -> None:
    """Each fixed hostile value once per manager, the operation turning with the value and
    the manager (every manager meets every value, every operation a share of them)."""
    target, d = inventory(lab, host, manager), driver_for(manager)
    turn = MANAGERS.index(manager)
    fresh(host)
    refused = 0
    for i, bad in enumerate(BAD_NAMES):
        op = OPERATIONS[(i + turn) % len(OPERATIONS)]
        with pytest.raises(InputError, match="not a valid"):
            await Case(manager, op, bad, "1.1-1.el9").run(executor, target)
        refused += 1
    for i, bad in enumerate(BAD_VERSIONS):
        op = OPERATIONS[1 + (i + turn) % (len(OPERATIONS) - 1)]  # installed takes no version
        with pytest.raises(InputError, match="not a valid RPM version"):
            await Case(manager, op, "demo-app", bad).run(executor, target)
        refused += 1
    assert refused == len(BAD_NAMES) + len(BAD_VERSIONS)
    # Only what needs no name or version ran (preflight's refresh and checks, the
    # installed version of the valid name); no install, no script with a value in it.
    allowed = [*refresh_and_checks(d), d.installed(["demo-app"])]
    assert set(cmdlog.ssh_commands(host)) <= {c.shell() for c in allowed}
    assert {(p, tuple(a)) for p, a in rpm_stubs.calls(host)} <= {
        (p, tuple(a)) for p, a in stand_in_calls(allowed)}  # fmt: skip
    assert host.sh("ls -A /var/lib/patchgate/ops 2>/dev/null || true").strip() == ""
    assert not_pwned(host)


_printable = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=16
)
_rpm_name = st.from_regex(r"[A-Za-z0-9_+][A-Za-z0-9._+-]{0,15}", fullmatch=True)
_rpm_version = st.from_regex(
    r"(?:[0-9]{1,3}:)?[A-Za-z0-9._+~^]{1,8}(?:-[A-Za-z0-9._+~^]{1,8})?", fullmatch=True
)
_hostile = st.sampled_from([v for v in (*HOSTILE, *CANARIES) if v])


def _around(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A valid value with something hostile before or after it."""
    return st.tuples(valid, _hostile, st.booleans()).map(
        lambda t: t[0] + t[1] if t[2] else t[1] + t[0]
    )


names = st.one_of(_rpm_name, _around(_rpm_name), _hostile, _printable,
                  st.sampled_from(BAD_NAMES))  # fmt: skip
versions = st.one_of(_rpm_version, _around(_rpm_version), _hostile, _printable,
                     st.sampled_from(BAD_VERSIONS))  # fmt: skip
# odd but valid pairs (they must arrive whole), and pairs with one or both parts hostile
pairs = st.one_of(
    st.tuples(_rpm_name, _rpm_version),
    st.tuples(names, _rpm_version),
    st.tuples(_rpm_name, versions),
    st.tuples(names, versions),
)
EXAMPLES = 20  # 2 per manager and operation


async def test_generated_names_and_versions_are_refused_or_arrive_as_whole_arguments(
    lab: Lab, host: LabHost, executor: SshExecutor
) -> None:
    """Generated pairs, each through one operation of one manager in turn (so every
    manager meets every operation): refused before any command names them, or run
    exactly as the driver built them."""
    drawn: list[tuple[str, str]] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(pairs)
    def collect(pair: tuple[str, str]) -> None:
        drawn.append(pair)

    collect()
    combos = [(m, o) for o in OPERATIONS for m in MANAGERS]
    cases = [Case(*combos[i % len(combos)], *pair) for i, pair in enumerate(drawn)]
    outcomes: dict[tuple[str, str], int] = {}
    for case in cases:
        outcome = await check(case, host, executor, inventory(lab, host, case.manager))
        outcomes[(case.operation, outcome)] = outcomes.get((case.operation, outcome), 0) + 1
    # the generated values took both paths: every operation ran some whole (the refusals
    # of every operation are also covered by the fixed lists above)
    assert {op for op, outcome in outcomes if outcome == "accepted"} == set(OPERATIONS), outcomes
    refused = sum(n for (_, outcome), n in outcomes.items() if outcome == "refused")
    assert refused >= EXAMPLES // 4, outcomes
    assert not_pwned(host)


# --- dnf and zypper on the real package managers --------------------------------------------


async def hostile_values_on_a_real_host(lab: Lab, host: LabHost, kh: Path, manager: str) -> None:
    """On a host with the real ``manager`` (given a fresh disk with the command recorders):
    every fixed hostile name and version is refused before any command names it, and a
    valid pin is applied and rolled back with exactly the argv the driver built, through
    sudo, with the rpm database following."""
    host.stop()
    host.prepare(new_host_key=False)
    cmdlog.install(host)
    host.start()
    d = driver_for(manager)
    target = inventory_host(lab, host, vars={"package_manager": manager})
    ex = lab_executor(kh)
    try:
        turn = 0 if manager == "dnf" else 1
        for i, bad in enumerate(BAD_NAMES):
            with pytest.raises(InputError, match="not a valid"):
                await Case(manager, OPERATIONS[(i + turn) % len(OPERATIONS)], bad, "1.1-1").run(
                    ex, target
                )
        for i, bad in enumerate(BAD_VERSIONS):
            op = OPERATIONS[1 + (i + turn) % (len(OPERATIONS) - 1)]
            with pytest.raises(InputError, match="not a valid RPM version"):
                await Case(manager, op, "demo-app", bad).run(ex, target)
        allowed = [*refresh_and_checks(d), d.installed(["demo-app"])]
        assert set(cmdlog.ssh_commands(host)) <= {c.shell() for c in allowed}
        assert host.sh("ls -A /var/lib/patchgate/ops 2>/dev/null || true").strip() == ""
        assert not_pwned(host)

        cmdlog.clear(host)
        pin, back = {"demo-app": "1.1-1"}, {"demo-app": "1.0-1"}
        assert (await ex.preflight(target, pin)).ok  # secures 1.0-1 for the rollback
        applied = await ex.apply(target, pin, op_id=uuid.uuid4().hex)
        assert applied.ok and applied.after == pin, applied.output_tail
        assert list(d.install_exact(pin).full_argv()[1:]) in cmdlog.argvs(host, "sudo")
        rolled = await ex.rollback(target, back)
        assert rolled.ok and rolled.after == back, rolled.output_tail
        undo = d.rollback(back, material_dir=MATERIAL_DIR, transaction=None)
        assert list(undo.full_argv()[1:]) in cmdlog.argvs(host, "sudo")
    finally:
        ex.close()
    assert not_pwned(host)

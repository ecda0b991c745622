"""Injection on real hosts: hostile names, versions, addresses and arguments never reach
a shell unquoted and never change the command run on the host.

The lab host records every command line sshd is asked to run and the argv of sudo,
apt-get, apt, dpkg and dpkg-query (tests/security/cmdlog.py). Hostile values either are
refused before any package command runs (clear InputError, nothing on the host), or
arrive on the host as exactly the arguments PatchGate meant, one each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.packages.apt import AptDriver
from integrations.packages.base import Command
from integrations.ssh import SshExecutor, SshOptions
from tests.fuzz.strategies import HOSTILE
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from tests.security import cmdlog
from workflows.errors import HostUnreachable, InputError
from workflows.ports import InventoryHost

PWNED = "/tmp/pg-pwned"
CANARIES = (
    f"; touch {PWNED}", f"$(touch {PWNED})", f"`touch {PWNED}`", f"\ntouch {PWNED}",
    f"' ; touch {PWNED} ; '", f'" ; touch {PWNED} ; "', f"| touch {PWNED}", f"&& touch {PWNED}",
    f"\r\ntouch {PWNED}", f"${{IFS}}touch${{IFS}}{PWNED}",
)  # fmt: skip
BAD_NAMES = (
    *(f"demo-app{c}" for c in CANARIES[:4]),
    "--allow-unauthenticated", "-oAPT::Get::AllowUnauthenticated=true", "demo-app=1.0 openssl",
    "demo-app'", 'demo-app"', "démo-app", "demo-app\u200b", "DEMO-APP", "demo-app\n", "",
    "a" * 300, "demo-app:amd64;id", "*", "demo-*",
)  # fmt: skip
BAD_VERSIONS = (
    f"1.1; touch {PWNED}", f"1.1$(touch {PWNED})", "1.1 demo-kernel", "--force-yes", "1.1\n",
    "1.1`id`", "1:", "a1.1", "1.1|id", "-1.1", "1.1\u00a0", "",
)  # fmt: skip


READ_ONLY_DPKG = {("--print-architecture",), ("--print-foreign-architectures",)}


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    machine = lab.host("lab-sec", 41)
    machine.prepare()
    cmdlog.install(machine)
    try:
        machine.start()
        yield machine
    finally:
        machine.stop()


def inventory(lab: Lab, host: LabHost, **kw: object) -> InventoryHost:
    fields: dict[str, object] = {
        "name": host.name, "address": host.address, "port": host.port, "user": "patchgate",
        "private_key_file": str(lab.client_key), "groups": frozenset({"lab"}),
    }  # fmt: skip
    fields.update(kw)
    return InventoryHost(**fields)  # type: ignore[arg-type]


@pytest.fixture
def executor(host: LabHost, tmp_path: Path) -> Iterator[SshExecutor]:
    kh = tmp_path / "known_hosts"
    kh.write_text(host.known_hosts_line + "\n")
    ex = SshExecutor(SshOptions(known_hosts=kh, concurrency=2, command_timeout=120,
                                connect_timeout=5))  # fmt: skip
    try:
        yield ex
    finally:
        ex.close()


def assert_not_pwned(host: LabHost) -> None:
    assert host.sh(f"test -e {PWNED} && echo yes || echo no").strip() == "no"
    assert not Path(PWNED).exists()


def test_the_recorders_see_what_the_executor_runs(
    lab: Lab, host: LabHost, executor: SshExecutor
) -> None:
    """The positive control: a real apply shows up, argument by argument."""
    import asyncio

    lab.publish_only("demo-app=1.0", "demo-app=1.1")
    host.sh("apt-get update -qq -o APT::Update::Error-Mode=any", timeout=120)
    cmdlog.clear(host)
    target = inventory(lab, host)
    result = asyncio.run(executor.apply(target, {"demo-app": "1.1"}, op_id=uuid.uuid4().hex))
    assert result.ok, result.output_tail
    assert host.installed("demo-app") == "1.1"
    expected = AptDriver().install_exact({"demo-app": "1.1"})
    assert list(expected.full_argv()[1:]) in cmdlog.argvs(host, "sudo")
    assert list(expected.argv[1:]) in cmdlog.argvs(host, "apt-get")
    assert any(expected.shell() in line for line in cmdlog.ssh_commands(host))


async def test_an_odd_but_valid_version_reaches_apt_get_as_one_argument(
    lab: Lab, host: LabHost, executor: SshExecutor
) -> None:
    cmdlog.clear(host)
    odd = {"demo-app": "1:1.1~rc1+b2.3"}
    result = await executor.apply(inventory(lab, host), odd, op_id=uuid.uuid4().hex)
    assert not result.ok  # apt has no such version: it says so, and nothing else ran
    expected = AptDriver().install_exact(odd)
    assert cmdlog.argvs(host, "apt-get") == [list(expected.argv[1:])]
    assert "demo-app=1:1.1~rc1+b2.3" in cmdlog.argvs(host, "apt-get")[0]
    assert host.installed("demo-app") == "1.1"


async def test_hostile_package_names_and_versions_are_refused_before_any_package_command(
    lab: Lab, host: LabHost, executor: SshExecutor
) -> None:
    target = inventory(lab, host)
    cmdlog.clear(host)
    refused = 0
    for bad in BAD_NAMES:
        for call in (
            executor.apply(target, {bad: "1.1"}, op_id=uuid.uuid4().hex),
            executor.installed(target, [bad]),
            executor.rollback(target, {bad: "1.0"}),
        ):
            with pytest.raises(InputError, match="not a valid"):
                await call
            refused += 1
    for bad in BAD_VERSIONS:
        with pytest.raises(InputError, match="not a valid Debian version"):
            await executor.apply(target, {"demo-app": bad}, op_id=uuid.uuid4().hex)
        refused += 1
    assert refused == 3 * len(BAD_NAMES) + len(BAD_VERSIONS)
    # nothing changed anything: no sudo, no apt-get, no dpkg; only read-only queries
    assert cmdlog.argvs(host, "sudo") == []
    assert cmdlog.argvs(host, "apt-get") == []
    assert {tuple(a) for a in cmdlog.argvs(host, "dpkg")} <= READ_ONLY_DPKG  # facts only
    for args in cmdlog.argvs(host, "dpkg-query"):
        assert not any(bad and bad in arg for bad in (*BAD_NAMES, *BAD_VERSIONS) for arg in args
                       if len(bad) > 2)  # fmt: skip
    for line in cmdlog.ssh_commands(host):
        assert PWNED not in line
    assert host.installed("demo-app") == "1.1"
    assert_not_pwned(host)


_printable = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=20,
)


async def test_every_hostile_argument_arrives_as_exactly_that_argument(
    lab: Lab, host: LabHost, executor: SshExecutor
) -> None:
    """run_argv (command health checks) takes any strings: each is one argument on the
    host, byte for byte, and the line sshd ran is the quoted command line."""
    target = inventory(lab, host)
    fixed = [v for v in (*HOSTILE, *CANARIES, *BAD_NAMES, *BAD_VERSIONS) if "\x00" not in v]
    batches = [fixed]

    @settings(max_examples=8, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.lists(st.one_of(st.sampled_from(fixed), _printable), min_size=1, max_size=12))
    def collect(values: list[str]) -> None:
        batches.append(values)

    collect()
    for values in batches:
        cmdlog.clear(host)
        out = await executor.run_argv(target, ["pg-argv", *values], 60)
        assert out.exit_code == 0, out.stderr
        assert cmdlog.argvs(host) == [values]
        assert cmdlog.ssh_commands(host) == [Command(("pg-argv", *values), sudo=False).shell()]
    assert_not_pwned(host)


async def test_hostile_addresses_users_and_jump_hosts_connect_nowhere_and_run_nothing(
    lab: Lab, host: LabHost, executor: SshExecutor
) -> None:
    cmdlog.clear(host)
    for change in (
        {"address": f"{host.address}; touch {PWNED}"},
        {"address": f"-oProxyCommand=touch {PWNED}"},
        {"address": f"$(touch {PWNED})"},
        {"address": f"{host.address}\ntouch {PWNED}"},
        {"user": f"patchgate; touch {PWNED}"},
        {"user": "-oProxyCommand=touch /tmp/pg-pwned"},
        {"jump_host": f"-oProxyCommand=touch {PWNED}"},
        {"jump_host": f"jump; touch {PWNED}"},
    ):
        with pytest.raises((HostUnreachable, InputError)) as caught:
            await executor.facts(inventory(lab, host, **change))
        assert str(caught.value).strip()
    assert cmdlog.ssh_commands(host) == []
    assert_not_pwned(host)

"""Input safety: strict grammars, and no generated string escapes Command.shell()'s quoting."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.packages import driver_for, grammar
from integrations.packages.base import Command
from workflows.errors import InputError

NASTY = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list("a1.-+~:;&|$`'\"\\(){}<>*?[]! \n\t#=%^"))),
    st.lists(st.sampled_from(["$(id)", "`id`", "a", "1.0", "';'", "\n", "\u00e9"])).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(NASTY)
def test_grammars_refuse_anything_with_shell_metacharacters(value: str) -> None:
    for check in (grammar.debian_package, grammar.debian_version, grammar.rpm_package,
                  grammar.rpm_version, grammar.host_name, grammar.abs_path):  # fmt: skip
        try:
            accepted = check(value)
        except InputError:
            continue
        assert accepted == value
        assert not set(value) & set(";&|$`'\"\\(){}<>*?[]! \n\t#%"), (check, value)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(NASTY.filter(lambda s: "\x00" not in s), min_size=1, max_size=4))
def test_real_bash_prints_exactly_the_arguments_the_command_was_given(args: list[str]) -> None:
    cmd = Command(("printf", "%s\\0", *args), sudo=False)
    line = cmd.shell().replace("env LC_ALL=C ", "", 1)
    done = subprocess.run(["bash", "-c", line], capture_output=True, check=True)
    assert done.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1] == args


@pytest.mark.parametrize("manager", ["apt", "dnf", "yum", "zypper"])
@pytest.mark.parametrize("bad", ["x; reboot", "$(id)", "`id`", "a\nb", "-o", "'q'"])
def test_every_driver_refuses_a_bad_name_before_building_a_command(manager: str, bad: str) -> None:
    driver = driver_for(manager)
    with pytest.raises(InputError):
        driver.install_exact({bad: "1.0"})
    with pytest.raises(InputError):
        driver.installed([bad])
    with pytest.raises(InputError):
        driver.rollback({"ok-name": bad}, material_dir="/var/lib/patchgate/rollback/1")


def test_sudo_prefix_and_fixed_environment() -> None:
    cmd = Command(("apt-get", "install", "a=1"), env={"DEBIAN_FRONTEND": "noninteractive"})
    assert cmd.shell() == (
        "sudo -n -- env LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get install a=1"
    )

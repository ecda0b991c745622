"""Version comparison is a total order: reflexive, antisymmetric, transitive, and for
Debian the same order as the real ``dpkg --compare-versions``."""

from __future__ import annotations

import functools
import itertools
import shutil
import subprocess

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from integrations.packages.versions import compare_debian, compare_rpm
from tests.fuzz.strategies import deb_version, rpm_version
from tests.fuzz.targets import env_budget

BUDGET = env_budget(300)
# A missing RPM release compares equal to any release (rpm -q matching, documented in
# versions.py), which is not transitive ("1-1" = "1" = "1-2" but "1-1" < "1-2"): the
# order is checked on full epoch:version-release strings.
rpm_full = rpm_version.filter(lambda v: "-" in v)
COMPARES = {"debian": (compare_debian, deb_version), "rpm": (compare_rpm, rpm_full)}


@pytest.mark.parametrize("kind", sorted(COMPARES))
def test_comparison_is_a_total_order(kind: str) -> None:
    compare, versions = COMPARES[kind]

    @settings(settings.get_profile("patchgate-fuzz"), max_examples=BUDGET)
    @given(versions, versions, versions)
    @example("1.0-1", "1.0-1.el9", "1.0~rc1-1").via("rpm-like")
    @example("1:1.0-1", "1.0-1", "2.0-0").via("epochs")
    def check(a: str, b: str, c: str) -> None:
        assert compare(a, a) == 0
        assert compare(a, b) == -compare(b, a)
        if compare(a, b) <= 0 and compare(b, c) <= 0:
            assert compare(a, c) <= 0, (a, b, c)
        if compare(a, b) == 0:
            assert compare(a, c) == compare(b, c), (a, b, c)

    check()


def _dpkg(a: str, op: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg")
def test_a_sorted_list_of_debian_versions_is_in_dpkg_order() -> None:
    """One sort of 40 generated versions per example, each neighbour pair checked with
    the real dpkg (cheap: about 40 dpkg runs per example)."""

    @settings(settings.get_profile("patchgate-fuzz"), max_examples=5, derandomize=True)
    @given(st.lists(deb_version, min_size=40, max_size=40, unique=True))
    def check(versions: list[str]) -> None:
        ordered = sorted(versions, key=functools.cmp_to_key(compare_debian))
        for low, high in itertools.pairwise(ordered):
            op = "eq" if compare_debian(low, high) == 0 else "lt"
            assert _dpkg(low, op, high), (low, op, high)

    check()


def test_an_rpm_version_without_release_matches_any_release_by_design() -> None:
    assert compare_rpm("1.0-1", "1.0") == compare_rpm("1.0", "1.0-2") == 0
    assert compare_rpm("1.0-1", "1.0-2") == -1

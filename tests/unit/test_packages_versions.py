"""Version comparison: Debian against the real dpkg, RPM against rpm's own test vectors."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.packages.versions import compare_debian, compare_rpm, rpmvercmp

_upstream_chars = st.sampled_from(list("0123456789abz.+~"))
_rev_chars = st.sampled_from(list("0123456789abz.+~"))


@st.composite
def debian_versions(draw: st.DrawFn) -> str:
    epoch = draw(st.sampled_from(["", "", "", "1:", "2:", "0:"]))
    upstream = draw(st.integers(0, 20).map(str)) + "".join(
        draw(st.lists(_upstream_chars, max_size=6))
    )
    revision = draw(st.one_of(st.just(""), st.lists(_rev_chars, min_size=1, max_size=5)))
    return epoch + upstream + ("-" + "".join(revision) if revision else "")


_DPKG_LOOP = """
while IFS=' ' read -r a b; do
  if dpkg --compare-versions "$a" lt "$b"; then echo -1
  elif dpkg --compare-versions "$a" eq "$b"; then echo 0
  else echo 1; fi
done
"""


def dpkg_batch(pairs: list[tuple[str, str]]) -> list[int]:
    """One bash process runs the real dpkg on every pair (a Python spawn per pair is slow)."""
    done = subprocess.run(
        ["bash", "-c", _DPKG_LOOP],
        input="".join(f"{a} {b}\n" for a, b in pairs),
        capture_output=True,
        text=True,
        check=True,
    )
    return [int(x) for x in done.stdout.split()]


def dpkg_says(a: str, b: str) -> int:
    for op, result in (("lt", -1), ("eq", 0)):
        done = subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False)
        if done.returncode == 0:
            return result
    return 1


@settings(max_examples=3, deadline=None, derandomize=True)
@given(st.lists(st.tuples(debian_versions(), debian_versions()), min_size=100, max_size=100))
def test_debian_comparison_agrees_with_the_real_dpkg_on_300_generated_pairs(
    pairs: list[tuple[str, str]],
) -> None:
    real = dpkg_batch(pairs)
    ours = [compare_debian(a, b) for a, b in pairs]
    assert [(p, o, r) for p, o, r in zip(pairs, ours, real, strict=True) if o != r] == []


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1:1.0", "2.0", 1),
        ("1.0~rc1", "1.0", -1),
        ("1.0~~", "1.0~", -1),
        ("1.0-1", "1.0-1~bpo1", 1),
        ("2.36-9+deb12u4", "2.36-9+deb12u10", -1),
        ("1:8.9p1-3ubuntu0.10", "1:8.9p1-3ubuntu0.7", 1),
    ],
)
def test_debian_edge_cases(a: str, b: str, expected: int) -> None:
    assert compare_debian(a, b) == expected == dpkg_says(a, b)


# From rpm's own test suite (tests/rpmvercmp.at).
RPM_VECTORS = [
    ("1.0", "1.0", 0),
    ("1.0", "2.0", -1),
    ("2.0.1", "2.0", 1),
    ("2.0.1a", "2.0.1", 1),
    ("5.5p1", "5.5p2", -1),
    ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1),
    ("xyz10", "xyz10.1", -1),
    ("xyz.4", "8", -1),
    ("1b.fc17", "1.fc17", -1),
    ("1.0a", "1.0", 1),
    ("1g.fc17", "1.fc17", 1),
    ("6.0.rc1", "6.0", 1),
    ("10b2", "10a1", 1),
    ("1.1.\u03b1", "1.1.\u03b1", 0),
    ("20101121", "20101122", -1),
    ("2_0", "2_0", 0),
    ("2.0", "2_0", 0),
    ("a+", "a_", 0),
    ("+", "_", 0),
    ("1.0~rc1", "1.0~rc1", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0^", "1.0", 1),
    ("1.0^git1", "1.0", 1),
    ("1.0^git1", "1.0^git2", -1),
    ("1.0^git1", "1.01", -1),
    ("1.0^20160101", "1.0.1", -1),
    ("1.0^20160101^git1", "1.0^20160101", 1),
    ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
    ("1.0^git1", "1.0~rc1", 1),
]


@pytest.mark.parametrize(("a", "b", "expected"), RPM_VECTORS)
def test_rpmvercmp_matches_rpms_own_test_vectors(a: str, b: str, expected: int) -> None:
    assert rpmvercmp(a, b) == expected
    assert rpmvercmp(b, a) == -expected


def test_rpm_epoch_beats_version_and_release_breaks_ties() -> None:
    assert compare_rpm("1:1.0-1", "2.0-1") == 1
    assert compare_rpm("3.0.7-27.el9", "3.0.7-24.el9") == 1
    assert compare_rpm("3.0.7-27.el9", "3.0.7") == 0
    assert compare_rpm("0:1.2-3", "1.2-3") == 0

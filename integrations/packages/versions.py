"""Version comparison by each manager's rules.

Debian: python-debian's ``Version`` (epochs, ``~``, upstream/revision), checked in the
tests against the real ``dpkg --compare-versions``. RPM: ``rpmvercmp`` written out
here (a dozen lines of rpm's C; the PyPI ports are unmaintained or pull in large
dependencies), with epoch:version-release splitting, ``~`` (sorts before anything)
and ``^`` (sorts after the base, before anything else appended).
"""

from __future__ import annotations

import re

from debian.debian_support import version_compare

from workflows.errors import InputError


def compare_debian(a: str, b: str) -> int:
    """-1, 0 or 1 as dpkg orders two Debian versions (InputError for a non-version)."""
    try:
        result = version_compare(a, b)
    except ValueError:
        raise InputError(f"cannot compare Debian versions {a!r} and {b!r}") from None
    return (result > 0) - (result < 0)


_SEGMENT = re.compile(r"(\d+|[A-Za-z]+|~|\^)")


def rpmvercmp(a: str, b: str) -> int:
    """rpm's ``rpmvercmp`` on one version or release string: -1, 0 or 1."""
    if a == b:
        return 0
    i = j = 0
    while True:
        # skip separators (anything not alphanumeric, ~ or ^)
        while i < len(a) and not (a[i].isalnum() and a[i].isascii()) and a[i] not in "~^":
            i += 1
        while j < len(b) and not (b[j].isalnum() and b[j].isascii()) and b[j] not in "~^":
            j += 1
        # tilde sorts before everything, even the end of the string
        a_t, b_t = a[i : i + 1] == "~", b[j : j + 1] == "~"
        if a_t or b_t:
            if not a_t:
                return 1
            if not b_t:
                return -1
            i, j = i + 1, j + 1
            continue
        # caret sorts after the end of the string, before anything else
        a_c, b_c = a[i : i + 1] == "^", b[j : j + 1] == "^"
        if a_c or b_c:
            if i >= len(a):
                return -1
            if j >= len(b):
                return 1
            if not a_c:
                return 1
            if not b_c:
                return -1
            i, j = i + 1, j + 1
            continue
        if i >= len(a) or j >= len(b):
            break
        ma = _SEGMENT.match(a, i)
        mb = _SEGMENT.match(b, j)
        assert ma is not None and mb is not None
        sa, sb = ma.group(), mb.group()
        a_num, b_num = sa.isdigit(), sb.isdigit()
        if a_num != b_num:
            return 1 if a_num else -1  # a number is newer than letters
        if a_num:
            na, nb = sa.lstrip("0"), sb.lstrip("0")
            if len(na) != len(nb):
                return 1 if len(na) > len(nb) else -1
            if na != nb:
                return 1 if na > nb else -1
        elif sa != sb:
            return 1 if sa > sb else -1
        i, j = ma.end(), mb.end()
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def split_evr(evr: str) -> tuple[int, str, str | None]:
    epoch_text, sep, rest = evr.partition(":")
    if not sep:
        epoch_text, rest = "0", evr
    if not (epoch_text or "0").isascii() or not (epoch_text or "0").isdigit():
        raise InputError(f"not an RPM version (epoch is not a number): {evr!r}")
    version, dash, release = rest.rpartition("-")
    if not dash:
        version, release = rest, ""
    return int(epoch_text or "0"), version, (release if dash else None)


def compare_rpm(a: str, b: str) -> int:
    """Compare two ``[epoch:]version[-release]`` strings as rpm does (-1, 0, 1).

    A missing release compares equal to any release (as ``rpm -q`` matching does).
    """
    ea, va, ra = split_evr(a)
    eb, vb, rb = split_evr(b)
    if ea != eb:
        return 1 if ea > eb else -1
    result = rpmvercmp(va, vb)
    if result or ra is None or rb is None:
        return result
    return rpmvercmp(ra, rb)


def compare(manager: str, a: str, b: str) -> int:
    return compare_debian(a, b) if manager == "apt" else compare_rpm(a, b)

"""Strict grammars for what meets a command line: package names, versions, host names, paths.

Every driver checks its inputs here before building a :class:`~integrations.packages.base.Command`
and raises :class:`workflows.errors.InputError` on the first bad one. The grammars are
deliberately narrower than what the tools accept (no colons in Debian upstream versions
without an epoch, no shell-special characters anywhere), so that a name that reaches a
host is one a person would recognise; quoting (``Command.shell``) is the second wall.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from workflows.errors import InputError

# Debian policy 5.6.1: lower case letters, digits, + - . ; at least two characters,
# starting with an alphanumeric. An optional ``:arch`` qualifier (multi-arch).
_DEB_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+(?::[a-z0-9][a-z0-9-]*)?")
# Debian policy 5.6.12: [epoch:]upstream[-revision]; upstream starts with a digit and
# uses [A-Za-z0-9.+~-] (a hyphen only when there is a revision); revision [A-Za-z0-9+.~].
_DEB_VERSION = re.compile(
    r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~]*(?:(?:-[A-Za-z0-9.+~]+)*-[A-Za-z0-9+.~]+)?"
)
# RPM: names of letters, digits and . _ + -, not starting with a dash or dot;
# version and release of letters, digits and . _ + ~ ^ (no dash); epoch digits.
_RPM_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*")
_RPM_VR = r"[A-Za-z0-9._+~^]+"
_RPM_EVR = re.compile(rf"(?:[0-9]+:)?{_RPM_VR}(?:-{_RPM_VR})?")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PATH = re.compile(r"/(?:[A-Za-z0-9._-]+/?)*")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

MAX_LEN = 200


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(pattern: re.Pattern[str], value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_LEN or not pattern.fullmatch(value):
        raise InputError(f"not a valid {what}: {_show(value)}")
    return value


def debian_package(name: object) -> str:
    """A Debian binary package name, optionally with a ``:arch`` qualifier."""
    return _check(_DEB_NAME, name, "Debian package name")


def debian_version(version: object) -> str:
    return _check(_DEB_VERSION, version, "Debian version")


def rpm_package(name: object) -> str:
    return _check(_RPM_NAME, name, "RPM package name")


def rpm_version(evr: object) -> str:
    """An RPM ``[epoch:]version[-release]``."""
    return _check(_RPM_EVR, evr, "RPM version")


def host_name(name: object) -> str:
    """A DNS host name (RFC 1123 labels) or an IPv4/IPv6 address."""
    if isinstance(name, str) and 0 < len(name) <= 253:
        try:
            ipaddress.ip_address(name)
            return name
        except ValueError:
            pass
        labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
        if all(_LABEL.fullmatch(label) for label in labels):
            return name
    raise InputError(f"not a valid host name: {_show(name)}")


def abs_path(path: object) -> str:
    """An absolute path of plain characters, without ``..`` components."""
    checked = _check(_PATH, path, "absolute path")
    if ".." in checked.split("/"):
        raise InputError(f"not a valid absolute path: {_show(path)}")
    return checked


def token(value: object, what: str = "identifier") -> str:
    """An id such as an operation id or a transaction id: [A-Za-z0-9._-], 1..128."""
    return _check(_TOKEN, value, what)


def names(values: Iterable[object], *, rpm: bool = False) -> list[str]:
    check = rpm_package if rpm else debian_package
    out = [check(v) for v in values]
    if not out:
        raise InputError("no packages given")
    return out

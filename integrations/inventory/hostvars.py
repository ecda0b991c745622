"""Inventory variables -> :class:`InventoryHost` fields, shared by every inventory format.

Connection variables follow Ansible's names (``ansible_host``, ``ansible_port``,
``ansible_user``, ``ansible_ssh_private_key_file``, ``ansible_become``); PatchGate's
own attributes are ``patchgate_tags``, ``environment`` (or ``patchgate_environment``),
``owner``, ``criticality``, ``internet_facing``, ``patchgate_accept_new_host_key`` and
``patchgate_jump_host``; ``patchgate_os_family`` (linux, windows, macos) and
``patchgate_os_build`` are checked and kept in ``vars``. Every variable is also kept in
``InventoryHost.vars``.

Values are checked strictly: a bad port or criticality is an error naming the host
and the file, never a silent default. Templated values (``{{ ... }}``) are refused in
the variables PatchGate reads, since PatchGate does not evaluate Jinja.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from workflows.errors import InventoryError
from workflows.hostos import family_word
from workflows.ports import OS_BUILD_VAR, OS_FAMILY_VAR, InventoryHost

HOST_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:%-]*$")
CRITICALITIES = ("low", "medium", "high", "critical")
Criticality = Literal["low", "medium", "high", "critical"]

_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}


class HostProblem(ValueError):
    """A bad value for one host; the format loader adds the file and host name."""


@dataclass(frozen=True)
class Vaulted:
    """An ``!vault`` value, kept undecrypted: where it is written, never its content."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"<vaulted at {self.path}:{self.line}>"


# The variables PatchGate reads: a vaulted value in one of these is an error.
READ_VARS = (
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_become",
    "ansible_ssh_common_args",
    "patchgate_tags",
    "patchgate_environment",
    "environment",
    "owner",
    "criticality",
    "internet_facing",
    "patchgate_jump_host",
    "patchgate_accept_new_host_key",
    OS_FAMILY_VAR,
    OS_BUILD_VAR,
)


def _refuse_vaulted(variables: Mapping[str, Any]) -> None:
    for key in READ_VARS:
        value = variables.get(key)
        if isinstance(value, Vaulted):
            raise HostProblem(
                f"{key} is encrypted with ansible-vault ({value.path}:{value.line}); "
                "PatchGate does not decrypt vault values: give it in plain text"
            )


def jump_from_ssh_args(value: object) -> str | None:
    """The jump host in ``ansible_ssh_common_args`` (``-J`` or ``-o ProxyJump=``).

    Returned as ``[user@]host[:port]``; a chain of several jump hosts is refused.
    """
    if value is None:
        return None
    text = _plain_text("ansible_ssh_common_args", value)
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise HostProblem(f"ansible_ssh_common_args cannot be parsed: {exc}") from None
    found: str | None = None
    index = 0
    while index < len(tokens):
        token = tokens[index]
        option: str | None = None
        if token == "-J" and index + 1 < len(tokens):
            found, index = tokens[index + 1], index + 2
            continue
        if token.startswith("-J") and len(token) > 2:
            found = token[2:]
        elif token == "-o" and index + 1 < len(tokens):
            option, index = tokens[index + 1], index + 1
        elif token.startswith("-o") and len(token) > 2:
            option = token[2:]
        if option is not None:
            key, _, rest = option.replace("=", " ", 1).partition(" ")
            if key.lower() == "proxyjump":
                found = rest.strip()
            elif key.lower() == "proxycommand":
                raise HostProblem(
                    "ansible_ssh_common_args uses ProxyCommand; PatchGate understands "
                    "ProxyJump (-J): set patchgate_jump_host or use -o ProxyJump=HOST"
                )
        index += 1
    if found is None or found.lower() == "none":
        return None
    if "," in found:
        raise HostProblem(f"ProxyJump {found!r} chains several jump hosts; PatchGate takes one")
    return found.removeprefix("ssh://")


def check_host_name(name: object) -> str:
    if not isinstance(name, str) or not HOST_NAME.fullmatch(name):
        raise HostProblem(f"{name!r} is not a valid host name (letters, digits, and _ . - : only)")
    return name


def _plain_text(key: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise HostProblem(f"{key} must be a string, got {value!r}")
    text = str(value)
    if "{{" in text or "{%" in text:
        raise HostProblem(f"{key} is templated ({text!r}); PatchGate does not evaluate Jinja")
    return text


def as_text(key: str, value: object) -> str | None:
    return None if value is None else _plain_text(key, value)


def as_bool(key: str, value: object, *, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise HostProblem(f"{key} must be true or false, got {value!r}")


def as_port(key: str, value: object) -> int:
    if value is None:
        return 22
    if isinstance(value, bool):
        raise HostProblem(f"{key} must be a port number 1-65535, got {value!r}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise HostProblem(f"{key} must be a port number 1-65535, got {value!r}")
    return value


def as_criticality(key: str, value: object) -> Criticality | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in CRITICALITIES:
        raise HostProblem(f"{key} must be one of {', '.join(CRITICALITIES)}, got {value!r}")
    return cast(Criticality, value.strip().lower())


def as_names(key: str, value: object) -> frozenset[str]:
    """A list of names (tags, groups); a comma-separated string is accepted too."""
    if value is None:
        return frozenset()
    items: Iterable[object]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise HostProblem(f"{key} must be a list of names, got {value!r}")
    names = set()
    for item in items:
        if not isinstance(item, str | int) or isinstance(item, bool) or not str(item).strip():
            raise HostProblem(f"{key} must be a list of names, got item {item!r}")
        names.add(str(item).strip())
    return frozenset(names)


# One object per distinct set of groups or tags: the hosts of a group share it (a set
# per host was a fifth of a large inventory's memory). Bounded: emptied when full.
_SHARED: dict[frozenset[str], frozenset[str]] = {}
SHARED_MAX = 10_000


def shared(names: frozenset[str]) -> frozenset[str]:
    """``names``, or an equal set already in use (frozensets never change)."""
    if len(_SHARED) >= SHARED_MAX:
        _SHARED.clear()
    return _SHARED.setdefault(names, names)


def host_from_vars(name: str, groups: Iterable[str], variables: Mapping[str, Any]) -> InventoryHost:
    """Build a host from its merged variables (group vars already overridden by host vars)."""
    v = variables
    _refuse_vaulted(v)
    environment = v.get("patchgate_environment", v.get("environment"))
    key_file = v.get("ansible_ssh_private_key_file", v.get("ansible_private_key_file"))
    return InventoryHost(
        name=check_host_name(name),
        address=as_text("ansible_host", v.get("ansible_host")),
        port=as_port("ansible_port", v.get("ansible_port")),
        user=as_text("ansible_user", v.get("ansible_user")),
        groups=shared(frozenset(g for g in groups if g not in ("all", "ungrouped"))),
        tags=shared(as_names("patchgate_tags", v.get("patchgate_tags"))),
        environment=as_text("environment", environment),
        owner=as_text("owner", v.get("owner")),
        criticality=as_criticality("criticality", v.get("criticality")),
        internet_facing=as_bool("internet_facing", v.get("internet_facing"), default=False),
        private_key_file=as_text("ansible_ssh_private_key_file", key_file),
        become=as_bool("ansible_become", v.get("ansible_become"), default=True),
        jump_host=as_text("patchgate_jump_host", v.get("patchgate_jump_host"))
        or jump_from_ssh_args(v.get("ansible_ssh_common_args")),
        accept_new_host_key=as_bool(
            "patchgate_accept_new_host_key", v.get("patchgate_accept_new_host_key"), default=False
        ),
        vars=os_vars(v),
    )


def os_vars(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The host's variables, its ``patchgate_os_family`` checked and written as
    PatchGate's word (``Windows`` -> ``windows``), ``patchgate_os_build`` as text."""
    out = dict(variables)
    if out.get(OS_FAMILY_VAR) not in (None, ""):
        try:
            out[OS_FAMILY_VAR] = family_word(out[OS_FAMILY_VAR])
        except ValueError as exc:
            raise HostProblem(str(exc)) from None
    if out.get(OS_BUILD_VAR) not in (None, ""):
        out[OS_BUILD_VAR] = as_text(OS_BUILD_VAR, out[OS_BUILD_VAR])
    return out


def problem(source: object, host: str | None, message: str) -> InventoryError:
    where = f"{source}: host {host}" if host else f"{source}"
    return InventoryError(f"{where}: {message}")

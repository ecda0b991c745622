"""Ansible's INI inventory format.

::

    mail.example.com

    [web]
    web[01:20].example.com ansible_user=deploy
    db-01:2222 criticality=high

    [web:vars]
    environment=production

    [prod:children]
    web

Parsing follows Ansible's ``ini`` inventory plugin: ``#`` and ``;`` start comments;
host lines are split like a shell (``shlex``) into a host pattern and ``key=value``
pairs; values (on host lines and in ``:vars`` sections) are read as Python literals
when they are one (``2222`` is a number, ``"2222"`` a string, ``yes`` stays a
string); hosts before the first section are ``ungrouped``. A ``[g:children]`` or
``[g:vars]`` naming a group declared nowhere in the file is an error, as in Ansible.
Errors name the file and line.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from pathlib import Path
from typing import Any

from integrations.inventory.ansible_model import AnsibleInventory
from workflows.errors import InventoryError

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


_LITERAL_START = frozenset("'\"[{(-+.0123456789")
_SHELL_SPECIAL = frozenset("'\"\\#")


def parse_value(text: str) -> Any:
    """A value as Ansible's INI plugin reads it: a Python literal when it is one."""
    if text.isascii() and text.isdigit() and (text == "0" or text[0] != "0"):
        return int(text)
    if text and text[0] not in _LITERAL_START and text not in ("True", "False", "None"):
        return text  # a name-like word is never a literal (fast path for large files)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if value is ... or isinstance(value, complex | bytes):
        return text
    return value


def parse_ansible_ini(text: str, *, source: Path) -> AnsibleInventory:
    inv = AnsibleInventory(source)
    declared: set[str] = {"all", "ungrouped"}
    pending: dict[str, tuple[int, str]] = {}  # group -> (line, what refers to it)
    group = inv.group("ungrouped")
    state = "hosts"

    def fail(number: int, message: str) -> InventoryError:
        return InventoryError(f"{source}:{number}: {message}")

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        section = _SECTION.match(line)
        if section:
            name, kind = section.group(1), section.group(2) or "hosts"
            if kind not in ("hosts", "children", "vars"):
                raise fail(number, f"section [{name}:{kind}] has unknown type {kind!r}")
            group = inv.group(name)
            state = kind
            if kind == "vars":
                if name not in declared:
                    pending.setdefault(name, (number, f"section [{name}:vars]"))
            else:
                declared.add(name)
                pending.pop(name, None)
            continue
        if line.startswith("[") and line.endswith("]"):
            raise fail(number, f"invalid section {line!r} (no spaces allowed in a section name)")
        if state == "hosts":
            try:
                # shlex only when quoting or comments need it (fast path for large files)
                special = any(ch in _SHELL_SPECIAL for ch in line)
                tokens = shlex.split(line, comments=True) if special else line.split()
            except ValueError as exc:
                raise fail(number, f"cannot parse host line {line!r}: {exc}") from None
            variables: dict[str, Any] = {}
            for token in tokens[1:]:
                key, eq, value = token.partition("=")
                if not eq:
                    raise fail(number, f"expected key=value host variable, got {token!r}")
                variables[key] = parse_value(value)
            try:
                inv.add_hosts(group, tokens[0], variables)
            except InventoryError as exc:
                raise fail(number, str(exc).split(": ", 1)[-1]) from None
        elif state == "vars":
            key, eq, value = line.partition("=")
            if not eq:
                raise fail(number, f"expected key=value, got {line!r}")
            group.vars[key.strip()] = parse_value(value.strip())
        else:
            match = _GROUP_NAME.match(line)
            if match is None:
                raise fail(number, f"expected a group name, got {line!r}")
            child = match.group(1)
            if child not in declared:
                pending.setdefault(child, (number, f"section [{group.name}:children]"))
            inv.add_child(group.name, child)
    for name, (number, where) in pending.items():
        if name not in declared:
            raise fail(number, f"{where} refers to group {name!r}, which is declared nowhere")
    return inv


def looks_like_ini(text: str) -> bool:
    """Content sniffing for files without a known extension: a ``[section]`` line."""
    return any(_SECTION.match(line.strip()) for line in text.splitlines())

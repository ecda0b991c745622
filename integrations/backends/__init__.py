"""The backends PatchGate can hand host work to (issue 19), by name.

:func:`build_backends` is the registry: the composition root (``bot``) calls it to get
the catalog the plan loader checks plans against (``plan validate``, ``serve``'s plan
loading) and the engine works through. Every entry implements
:class:`workflows.backends.BackendDeclaration`; a batch backend implements
:class:`workflows.backends.BatchBackend` as well.

Registered here:

- ``ssh``: PatchGate's own executor, host by host (:mod:`integrations.backends.ssh`);
  also when ``PATCHGATE_EXECUTOR=recording`` (the simulated executor does the work).

- ``ansible``: ``integrations.backends.ansible`` (ansible-runner), and ``awx``:
  ``integrations.backends.awx`` (AWX / Automation Platform REST API v2), and
  ``satellite``: ``integrations.backends.satellite`` (Foreman + Katello REST API v2). Both are built
  by the composition root from its settings (``bot.backends``) and passed in; when only
  plans are checked, their pure declarations (:class:`Declared`) stand in, so checking a
  plan imports neither ansible-runner nor an HTTP client. ``automox``
  (``integrations.backends.automox``, issue 20) is registered the same way, and so is
  ``ninjaone`` (``integrations.backends.ninjaone``, issue 21), and
  ``intune`` (``integrations.backends.intune``, issue 21: the Windows Update for Business
  deployment service through Microsoft Graph).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.backends.ssh import SshBackend
from workflows.backends import BackendDeclaration, Capabilities
from workflows.ports import Executor

__all__ = [
    "Declared",
    "SshBackend",
    "build_backends",
    "declared_ansible",
    "declared_automox",
    "declared_awx",
    "declared_intune",
    "declared_ninjaone",
    "declared_satellite",
    "declared_tanium",
]


@dataclass
class Declared:
    """A backend's declaration alone (what checking a plan needs), or one that cannot
    run here: ``unavailable`` then says why, as a problem with any plan that uses it."""

    name: str
    declare: Callable[[Mapping[str, Any]], Capabilities]
    check: Callable[[Mapping[str, Any]], Sequence[str]]
    unavailable: str | None = None

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        return self.declare(options)

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        problems = list(self.check(options))
        return [self.unavailable, *problems] if self.unavailable else problems


def declared_ansible(unavailable: str | None = None) -> Declared:
    from integrations.backends.ansible import options

    return Declared("ansible", options.capabilities, options.check_options, unavailable)


def declared_awx(unavailable: str | None = None) -> Declared:
    from integrations.backends.awx import options

    return Declared("awx", options.capabilities, options.check_options, unavailable)


def declared_automox(unavailable: str | None = None) -> Declared:
    from integrations.backends.automox import options

    return Declared("automox", options.capabilities, options.check_options, unavailable)


def declared_ninjaone(unavailable: str | None = None) -> Declared:
    from integrations.backends.ninjaone import options

    return Declared("ninjaone", options.capabilities, options.check_options, unavailable)


def declared_intune(unavailable: str | None = None) -> Declared:
    from integrations.backends.intune import options

    return Declared("intune", options.capabilities, options.check_options, unavailable)


def declared_satellite(unavailable: str | None = None) -> Declared:
    from integrations.backends.satellite import options

    return Declared("satellite", options.capabilities, options.check_options, unavailable)


def declared_tanium(unavailable: str | None = None) -> Declared:
    from integrations.backends.tanium import options

    return Declared("tanium", options.capabilities, options.check_options, unavailable)


def build_backends(
    *,
    executor: Executor | None = None,
    ansible: BackendDeclaration | None = None,
    awx: BackendDeclaration | None = None,
    automox: BackendDeclaration | None = None,
    satellite: BackendDeclaration | None = None,
    tanium: BackendDeclaration | None = None,
    ninjaone: BackendDeclaration | None = None,
    intune: BackendDeclaration | None = None,
    extra: Mapping[str, BackendDeclaration] | None = None,
) -> dict[str, BackendDeclaration]:
    """Every backend PatchGate has, by name; building one does no I/O.

    ``executor``: the engine's executor, through which the SSH backend assesses hosts
    (None: a catalog for checking plans only). ``ansible``, ``awx``, ``satellite``:
    those backends as the composition root built them (None: their declarations alone).
    ``extra``: more backends by name (tests, and the simulated batch backend of
    ``PATCHGATE_EXECUTOR=recording``); a name registered here cannot be replaced.
    """
    backends: dict[str, BackendDeclaration] = {
        "ssh": SshBackend(executor),
        "ansible": ansible or declared_ansible(),
        "awx": awx or declared_awx(),
        "automox": automox or declared_automox(),
        "satellite": satellite or declared_satellite(),
        "tanium": tanium or declared_tanium(),
        "ninjaone": ninjaone or declared_ninjaone(),
        "intune": intune or declared_intune(),
    }
    for name, backend in (extra or {}).items():
        if name in backends:
            raise ValueError(f"backend {name!r} is already registered")
        backends[name] = backend
    return backends

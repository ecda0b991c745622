"""The backends PatchGate can hand host work to (issue 19), by name.

:func:`build_backends` is the registry: the composition root (``bot``) calls it to get
the catalog the plan loader checks plans against (``plan validate``, ``serve``'s plan
loading) and the engine works through. Every entry implements
:class:`workflows.backends.BackendDeclaration`; a batch backend implements
:class:`workflows.backends.BatchBackend` as well.

Registered here:

- ``ssh``: PatchGate's own executor, host by host (:mod:`integrations.backends.ssh`);
  also when ``PATCHGATE_EXECUTOR=recording`` (the simulated executor does the work).

Registration points for the backends being written beside this one (the lead adds them
at merge, each one line in :func:`build_backends`; nothing is imported conditionally):

- ``ansible``: ``integrations.backends.ansible`` (ansible-runner)
- ``awx``: ``integrations.backends.awx`` (AWX / Automation Platform REST API v2)
"""

from __future__ import annotations

from collections.abc import Mapping

from integrations.backends.ssh import SshBackend
from workflows.backends import BackendDeclaration
from workflows.ports import Executor

__all__ = ["SshBackend", "build_backends"]


def build_backends(
    *,
    executor: Executor | None = None,
    extra: Mapping[str, BackendDeclaration] | None = None,
) -> dict[str, BackendDeclaration]:
    """Every backend PatchGate has, by name; building one does no I/O.

    ``executor``: the engine's executor, through which the SSH backend assesses hosts
    (None: a catalog for checking plans only). ``extra``: more backends by name (tests,
    and the simulated batch backend of ``PATCHGATE_EXECUTOR=recording``); a name
    registered here cannot be replaced.
    """
    backends: dict[str, BackendDeclaration] = {
        "ssh": SshBackend(executor),
        # REGISTER ansible here at merge, e.g.:
        #   "ansible": AnsibleBackend(...),   # integrations/backends/ansible/
        # REGISTER awx here at merge, e.g.:
        #   "awx": AwxBackend(...),           # integrations/backends/awx/
    }
    for name, backend in (extra or {}).items():
        if name in backends:
            raise ValueError(f"backend {name!r} is already registered")
        backends[name] = backend
    return backends

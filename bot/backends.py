"""The backends this PatchGate has (issue 19), built from Settings: the catalog that
``plan validate``, the faces and ``serve`` check plans against, and the engine works
through. A thin wrapper over :func:`integrations.backends.build_backends`, where each
backend is registered; the settings a backend needs (the Ansible backend's artifact
directory, the AWX URL and token) are passed from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import Settings
    from workflows.backends import BackendDeclaration
    from workflows.ports import Executor


def backend_catalog(
    settings: Settings, executor: Executor | None = None
) -> dict[str, BackendDeclaration]:
    """Every backend by name. ``executor``: the engine's (``serve``); None builds the
    declarations alone, which is all checking a plan needs (no I/O either way)."""
    from integrations.backends import build_backends

    del settings  # read here by the backends registered at merge (ansible, awx)
    return build_backends(executor=executor)

"""The ``intune`` backend: Windows quality updates through the Windows Update for
Business deployment service (Microsoft Graph), devices read from Intune.

Built in the composition root::

    client = GraphClient(tenant_id, client_id, client_secret, ...)
    backend = IntuneBackend(client, settings.intune_journal_dir, ...)
    ...
    await backend.close()
"""

from integrations.backends.intune.backend import IntuneBackend
from integrations.backends.intune.client import GraphClient
from integrations.backends.intune.errors import (
    IntuneAuthError,
    IntuneError,
    IntuneForbidden,
    IntuneNotFound,
    IntuneRejected,
    IntuneUnavailable,
)
from workflows.backends import BatchBackend, HaltBackend, StatusBackend


def as_port(backend: IntuneBackend) -> BatchBackend:
    """The backend as the engine's port (mypy checks it implements every method)."""
    return backend


def as_status(backend: IntuneBackend) -> StatusBackend:
    return backend


def as_halt(backend: IntuneBackend) -> HaltBackend:
    return backend


__all__ = [
    "GraphClient",
    "IntuneAuthError",
    "IntuneBackend",
    "IntuneError",
    "IntuneForbidden",
    "IntuneNotFound",
    "IntuneRejected",
    "IntuneUnavailable",
    "as_halt",
    "as_port",
    "as_status",
]

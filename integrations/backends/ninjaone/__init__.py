"""The ``ninjaone`` backend: NinjaOne (NinjaRMM) OS patch applies over the public API v2.

Built in the composition root::

    client = NinjaOneClient(settings.ninjaone_url, client_id, client_secret, scope=...)
    backend = NinjaOneBackend(client, settings.ninjaone_journal_dir, ...)
    ...
    await backend.close()
"""

from integrations.backends.ninjaone.backend import NinjaOneBackend
from integrations.backends.ninjaone.client import NinjaOneClient
from integrations.backends.ninjaone.errors import (
    NinjaOneAuthError,
    NinjaOneError,
    NinjaOneForbidden,
    NinjaOneNotFound,
    NinjaOneRejected,
    NinjaOneUnavailable,
)
from workflows.backends import BatchBackend, StatusBackend


def as_port(backend: NinjaOneBackend) -> BatchBackend:
    """The backend as the engine's port (mypy checks it implements every method)."""
    return backend


def as_status(backend: NinjaOneBackend) -> StatusBackend:
    """The backend as a tool that reports each device's own status."""
    return backend


__all__ = [
    "NinjaOneAuthError",
    "NinjaOneBackend",
    "NinjaOneClient",
    "NinjaOneError",
    "NinjaOneForbidden",
    "NinjaOneNotFound",
    "NinjaOneRejected",
    "NinjaOneUnavailable",
    "as_port",
    "as_status",
]

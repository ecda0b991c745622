"""The ``tanium`` backend: Tanium Patch deployments, the API Gateway's endpoints.

Built in the composition root::

    client = TaniumClient(settings.tanium_url, settings.tanium_token, ...)
    backend = TaniumBackend(client, settings.tanium_journal_dir, ...)
    ...
    await backend.close()
"""

from integrations.backends.tanium.backend import TaniumBackend
from integrations.backends.tanium.client import TaniumClient
from integrations.backends.tanium.errors import (
    TaniumAuthError,
    TaniumError,
    TaniumForbidden,
    TaniumNotFound,
    TaniumQueryError,
    TaniumRejected,
    TaniumUnavailable,
)
from workflows.backends import BatchBackend, StatusBackend


def as_port(backend: TaniumBackend) -> BatchBackend:
    """The backend as the engine's port (mypy checks it implements every method)."""
    return backend


def as_status(backend: TaniumBackend) -> StatusBackend:
    return backend


__all__ = [
    "TaniumAuthError",
    "TaniumBackend",
    "TaniumClient",
    "TaniumError",
    "TaniumForbidden",
    "TaniumNotFound",
    "TaniumQueryError",
    "TaniumRejected",
    "TaniumUnavailable",
    "as_port",
    "as_status",
]

"""The ``automox`` backend: Automox device commands over the console API.

Built in the composition root::

    client = AutomoxClient(settings.automox_api_key, settings.automox_org, ...)
    backend = AutomoxBackend(client, settings.automox_journal_dir, ...)
    ...
    await backend.close()
"""

from integrations.backends.automox.backend import AutomoxBackend
from integrations.backends.automox.client import AutomoxClient
from integrations.backends.automox.errors import (
    AutomoxAuthError,
    AutomoxError,
    AutomoxForbidden,
    AutomoxNotFound,
    AutomoxRejected,
    AutomoxUnavailable,
)
from workflows.backends import BatchBackend


def as_port(backend: AutomoxBackend) -> BatchBackend:
    """The backend as the engine's port (mypy checks it implements every method)."""
    return backend


__all__ = [
    "AutomoxAuthError",
    "AutomoxBackend",
    "AutomoxClient",
    "AutomoxError",
    "AutomoxForbidden",
    "AutomoxNotFound",
    "AutomoxRejected",
    "AutomoxUnavailable",
    "as_port",
]

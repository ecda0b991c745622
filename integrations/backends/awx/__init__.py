"""The ``awx`` backend: AWX / Ansible Automation Platform job templates (REST API v2).

Built in the composition root::

    client = AwxClient(settings.awx_url, settings.awx_token, ...)
    backend = AwxBackend(client, poll_interval=settings.awx_poll_interval)
    ...
    await client.close()
"""

from integrations.backends.awx.backend import AwxBackend
from integrations.backends.awx.client import AwxClient
from integrations.backends.awx.errors import (
    AwxAuthError,
    AwxError,
    AwxForbidden,
    AwxLaunchUnknown,
    AwxNotFound,
    AwxRejected,
    AwxUnavailable,
)
from workflows.backends import BatchBackend


def as_port(backend: AwxBackend) -> BatchBackend:
    """The backend as the engine's port (mypy checks it implements every method)."""
    return backend


__all__ = [
    "AwxAuthError",
    "AwxBackend",
    "AwxClient",
    "AwxError",
    "AwxForbidden",
    "AwxLaunchUnknown",
    "AwxNotFound",
    "AwxRejected",
    "AwxUnavailable",
    "as_port",
]

"""The ``satellite`` backend: Red Hat Satellite / Foreman + Katello remote execution
job invocations (REST API v2). Built in the composition root::

    client = SatelliteClient(settings.satellite_url, settings.satellite_user, password, ...)
    backend = SatelliteBackend(client, poll_interval=settings.satellite_poll_interval)
    ...
    await backend.close()
"""

from integrations.backends.satellite.backend import SatelliteBackend
from integrations.backends.satellite.client import SatelliteClient
from integrations.backends.satellite.errors import (
    SatelliteAuthError,
    SatelliteError,
    SatelliteForbidden,
    SatelliteLaunchUnknown,
    SatelliteNotFound,
    SatelliteRejected,
    SatelliteUnavailable,
)
from workflows.backends import BatchBackend


def as_port(backend: SatelliteBackend) -> BatchBackend:
    """The backend as the engine's port (mypy checks it implements every method)."""
    return backend


__all__ = [
    "SatelliteAuthError",
    "SatelliteBackend",
    "SatelliteClient",
    "SatelliteError",
    "SatelliteForbidden",
    "SatelliteLaunchUnknown",
    "SatelliteNotFound",
    "SatelliteRejected",
    "SatelliteUnavailable",
    "as_port",
]

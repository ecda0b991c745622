"""The ``intune`` backend in the catalog (issue 21): a plan naming it is refused until
the tenant, client id and secret are set; with them, ``serve`` gets the working backend,
and the secret stays a secret."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from bot.backends import INTUNE_NEEDS, backend_catalog
from bot.settings import Settings
from integrations.backends.intune import IntuneBackend
from integrations.testing.executor import RecordingExecutor
from integrations.testing.simstate import SimState

READY = {
    "intune_tenant_id": "contoso.onmicrosoft.com",
    "intune_client_id": "0b7c5f1e-1111-4a4a-9c9c-123456789abc",
    "intune_client_secret": SecretStr("s3cr3t~value"),
}


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_a_plan_naming_intune_is_refused_until_its_credentials_are_set() -> None:
    assert list(backend_catalog(_settings())["intune"].check_options({})) == [INTUNE_NEEDS]
    no_secret = {k: v for k, v in READY.items() if k != "intune_client_secret"}
    no_secret["intune_client_secret"] = "  "  # set but empty: not a secret
    assert list(backend_catalog(_settings(**no_secret))["intune"].check_options({})) == [
        INTUNE_NEEDS
    ]
    ready = backend_catalog(_settings(**READY))["intune"]
    assert list(ready.check_options({})) == []
    assert ready.capabilities({}).halt and ready.capabilities({}).status
    assert list(ready.check_options({"expedite": "yes"})) == [
        "intune.expedite: true or false, got 'yes'"
    ]


async def test_serve_builds_the_working_backend_when_configured() -> None:
    executor = RecordingExecutor(SimState(repo={}))
    ready = backend_catalog(_settings(**READY), executor)
    backend = ready["intune"]
    assert isinstance(backend, IntuneBackend)
    assert "s3cr3t" not in repr(backend._client) and "s3cr3t" not in repr(_settings(**READY))
    await backend.close()
    assert not isinstance(backend_catalog(_settings(), executor)["intune"], IntuneBackend)


def test_bad_intune_settings_are_clear_errors() -> None:
    with pytest.raises(ValidationError, match="not an http"):
        _settings(intune_graph_url="graph.microsoft.com")
    with pytest.raises(ValidationError, match="not a tenant or client id"):
        _settings(intune_tenant_id="contoso/../x")

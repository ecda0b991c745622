"""The ``ninjaone`` backend in the catalog (issue 21): a plan naming it is refused until
its OAuth2 client id and secret are set; with them, ``serve`` gets the working backend,
and the secret stays out of every repr."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.backends import NINJAONE_NEEDS, backend_catalog
from bot.settings import Settings
from integrations.backends.ninjaone import NinjaOneBackend
from integrations.testing.executor import RecordingExecutor
from integrations.testing.simstate import SimState

SECRET = "n1nja-s3cret-value"


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_a_plan_naming_ninjaone_is_refused_until_its_client_is_set() -> None:
    catalog = backend_catalog(_settings())
    assert list(catalog["ninjaone"].check_options({})) == [NINJAONE_NEEDS]
    assert list(
        backend_catalog(_settings(ninjaone_client_secret="  "))["ninjaone"].check_options({})
    )
    ready = backend_catalog(_settings(ninjaone_client_id="id", ninjaone_client_secret=SECRET))
    assert list(ready["ninjaone"].check_options({})) == []
    assert list(ready["ninjaone"].check_options({"apply_timout": 1}))  # the options checked
    caps = ready["ninjaone"].capabilities({})
    assert caps.status and not caps.halt and not caps.rollback


async def test_serve_builds_the_working_backend_and_the_secret_stays_secret() -> None:
    executor = RecordingExecutor(SimState(repo={}))
    settings = _settings(
        ninjaone_url="https://eu.ninjarmm.com/",
        ninjaone_client_id="pg-app",
        ninjaone_client_secret=SECRET,
        ninjaone_scope="monitoring  management",
    )
    assert settings.ninjaone_url == "https://eu.ninjarmm.com"
    assert settings.ninjaone_scope == "monitoring management"
    assert SECRET not in repr(settings)
    ready = backend_catalog(settings, executor)["ninjaone"]
    assert isinstance(ready, NinjaOneBackend)
    assert SECRET not in repr(ready._client) and "eu.ninjarmm.com" in repr(ready._client)
    await ready.close()
    off = backend_catalog(_settings(), executor)
    assert not isinstance(off["ninjaone"], NinjaOneBackend)


def test_a_bad_ninjaone_url_or_scope_is_a_clear_settings_error() -> None:
    with pytest.raises(ValidationError, match="URL of a NinjaOne region"):
        _settings(ninjaone_url="eu.ninjarmm.com")
    with pytest.raises(ValidationError, match="URL of a NinjaOne region"):
        _settings(ninjaone_url="https://eu.ninjarmm.com/ws/oauth/token")
    with pytest.raises(ValidationError, match="NinjaOne scopes are"):
        _settings(ninjaone_scope="monitoring offline_access")

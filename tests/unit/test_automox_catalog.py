"""The ``automox`` backend in the catalog (issue 20): a plan naming it is refused until
its API key and organization are set; with them, ``serve`` gets the working backend."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from bot.backends import AUTOMOX_NEEDS, backend_catalog
from bot.settings import Settings
from integrations.backends.automox import AutomoxBackend
from integrations.testing.executor import RecordingExecutor
from integrations.testing.simstate import SimState


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_a_plan_naming_automox_is_refused_until_its_key_and_org_are_set() -> None:
    catalog = backend_catalog(_settings())
    assert list(catalog["automox"].check_options({})) == [AUTOMOX_NEEDS]
    ready = backend_catalog(_settings(automox_api_key=SecretStr("k"), automox_org=42))
    assert list(ready["automox"].check_options({})) == []
    assert not ready["automox"].capabilities({}).rollback


async def test_serve_builds_the_working_backend_when_configured() -> None:
    executor = RecordingExecutor(SimState(repo={}))
    ready = backend_catalog(_settings(automox_api_key=SecretStr("k"), automox_org=42), executor)
    assert isinstance(ready["automox"], AutomoxBackend)
    await ready["automox"].close()
    off = backend_catalog(_settings(), executor)
    assert not isinstance(off["automox"], AutomoxBackend)


def test_a_bad_automox_url_or_org_is_a_clear_settings_error() -> None:
    with pytest.raises(ValidationError, match="not an http"):
        _settings(automox_url="console.automox.com")
    with pytest.raises(ValidationError, match="automox_org"):
        _settings(automox_org=0)

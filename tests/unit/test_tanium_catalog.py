"""The ``tanium`` backend in the catalog (issue 21): a plan naming it is refused until
its URL and API token are set; with them, ``serve`` gets the working backend; what it
declares (no rollback, reboot or halt) refuses plans that need them."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from bot.backends import TANIUM_NEEDS, backend_catalog
from bot.settings import Settings
from integrations.backends.tanium import TaniumBackend
from integrations.testing.executor import RecordingExecutor
from integrations.testing.simstate import SimState


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


READY = {"tanium_url": "https://tanium.example.com/", "tanium_token": SecretStr("token-x")}


def test_a_plan_naming_tanium_is_refused_until_its_url_and_token_are_set() -> None:
    catalog = backend_catalog(_settings())
    assert list(catalog["tanium"].check_options({})) == [TANIUM_NEEDS]
    ready = backend_catalog(_settings(**READY))
    assert list(ready["tanium"].check_options({})) == []
    caps = ready["tanium"].capabilities({})
    assert (caps.rollback, caps.reboot, caps.halt) == (False, False, False)
    assert caps.status and caps.inventory and caps.assess
    assert list(ready["tanium"].check_options({"pause": True})) == [
        "tanium: unknown option(s) pause (known: restart, override_maintenance_windows,"
        " override_blocklists, window, result_timeout, stale_after, stable_wait)"
    ]


async def test_serve_builds_the_working_backend_when_configured() -> None:
    executor = RecordingExecutor(SimState(repo={}))
    ready = backend_catalog(_settings(**READY), executor)
    assert isinstance(ready["tanium"], TaniumBackend)
    await ready["tanium"].close()
    assert not isinstance(backend_catalog(_settings(), executor)["tanium"], TaniumBackend)


def test_a_bad_tanium_url_is_a_clear_settings_error_and_a_blank_token_is_unset() -> None:
    with pytest.raises(ValidationError, match="not an http"):
        _settings(tanium_url="tanium.example.com")
    settings = _settings(tanium_url="https://t.example.com", tanium_token="  ")
    assert settings.tanium_token is None
    assert _settings(**READY).tanium_url == "https://tanium.example.com"
    assert "token-x" not in repr(_settings(**READY))

"""The backends this PatchGate has (issue 19), built from Settings: the catalog that
``plan validate``, the faces and ``serve`` check plans against, and the engine works
through. A thin wrapper over :func:`integrations.backends.build_backends`, where each
backend is registered; the settings a backend needs (the Ansible backend's artifact
directory and secrets, the AWX URL and token, the Satellite URL and credentials) are
passed from here.

Checking a plan builds declarations only (no ansible-runner, no HTTP client); ``serve``
(given its executor) builds the working backends and closes them at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import SecretStr

    from bot.settings import Settings
    from integrations.inventory.backend_source import ToolInventory
    from workflows.backends import BackendDeclaration
    from workflows.ports import Executor, InventoryHost

log = logging.getLogger("patchgate.backends")

AWX_NEEDS = "the awx backend is not configured: set PATCHGATE_AWX_URL and PATCHGATE_AWX_TOKEN"
AUTOMOX_NEEDS = (
    "the automox backend is not configured: set PATCHGATE_AUTOMOX_API_KEY and PATCHGATE_AUTOMOX_ORG"
)
TANIUM_NEEDS = (
    "the tanium backend is not configured: set PATCHGATE_TANIUM_URL and PATCHGATE_TANIUM_TOKEN"
)
NINJAONE_NEEDS = (
    "the ninjaone backend is not configured: set PATCHGATE_NINJAONE_CLIENT_ID and"
    " PATCHGATE_NINJAONE_CLIENT_SECRET"
)
SATELLITE_NEEDS = (
    "the satellite backend is not configured: set PATCHGATE_SATELLITE_URL,"
    " PATCHGATE_SATELLITE_USER and PATCHGATE_SATELLITE_PASSWORD"
)

INTUNE_NEEDS = (
    "the intune backend is not configured: set PATCHGATE_INTUNE_TENANT_ID,"
    " PATCHGATE_INTUNE_CLIENT_ID and PATCHGATE_INTUNE_CLIENT_SECRET"
)


def backend_catalog(
    settings: Settings, executor: Executor | None = None
) -> dict[str, BackendDeclaration]:
    """Every backend by name. ``executor``: the engine's (``serve``): the ansible, awx,
    automox and satellite backends are built to work; None builds the declarations alone,
    which is all checking a plan needs. Either way a plan naming a tool backend whose URL
    and credentials are not set is refused."""
    from integrations.backends import (
        build_backends,
        declared_automox,
        declared_awx,
        declared_intune,
        declared_ninjaone,
        declared_satellite,
        declared_tanium,
    )

    declared = {
        "awx": declared_awx,
        "automox": declared_automox,
        "satellite": declared_satellite,
        "tanium": declared_tanium,
        "ninjaone": declared_ninjaone,
        "intune": declared_intune,
    }
    tools: dict[str, BackendDeclaration | None] = {}
    for name, declaration in declared.items():
        why = _not_configured(settings, name)
        if why is not None:
            tools[name] = declaration(why)  # refuses any plan that names it
        else:
            tools[name] = None if executor is None else _BUILD[name](settings)
    ansible = None if executor is None else _ansible(settings)
    return build_backends(
        executor=executor,
        ansible=ansible,
        awx=tools["awx"],
        automox=tools["automox"],
        satellite=tools["satellite"],
        tanium=tools["tanium"],
        ninjaone=tools["ninjaone"],
        intune=tools["intune"],
    )


def _not_configured(settings: Settings, name: str) -> str | None:
    """Why the tool backend ``name`` cannot work here (its settings are not set), or None."""
    if name == "awx":
        ready = bool(settings.awx_url) and settings.awx_token is not None
        return None if ready else AWX_NEEDS
    if name == "automox":
        ready = settings.automox_api_key is not None and settings.automox_org is not None
        return None if ready else AUTOMOX_NEEDS
    if name == "tanium":
        ready = bool(settings.tanium_url) and settings.tanium_token is not None
        return None if ready else TANIUM_NEEDS
    if name == "ninjaone":
        ready = bool(settings.ninjaone_client_id) and settings.ninjaone_client_secret is not None
        return None if ready else NINJAONE_NEEDS
    if name == "intune":
        ready = (
            bool(settings.intune_tenant_id)
            and bool(settings.intune_client_id)
            and settings.intune_client_secret is not None
        )
        return None if ready else INTUNE_NEEDS
    ready = (
        bool(settings.satellite_url)
        and bool(settings.satellite_user)
        and settings.satellite_password is not None
    )
    return None if ready else SATELLITE_NEEDS


def _working(settings: Settings, name: str) -> BackendDeclaration | None:
    """The working backend ``name`` built from settings, or None when it is not
    configured (or has no working form here)."""
    if name == "ansible":
        return _ansible(settings)
    if name in _BUILD and _not_configured(settings, name) is None:
        return _BUILD[name](settings)
    return None


def _ansible(settings: Settings) -> BackendDeclaration:
    from integrations.backends.ansible import AnsibleBackend, AnsibleConfig

    def secret(value: SecretStr | None) -> str | None:
        return None if value is None else value.get_secret_value()

    return AnsibleBackend(
        AnsibleConfig(
            artifacts_dir=settings.ansible_artifacts_dir,
            known_hosts=settings.ssh_known_hosts.expanduser(),
            forks=settings.ansible_forks,
            timeout=settings.ansible_timeout,
            ssh_key=settings.ansible_ssh_key,
            ssh_key_passphrase=secret(settings.ansible_ssh_key_passphrase),
            become_password=secret(settings.ansible_become_password),
        )
    )


def _awx(settings: Settings) -> BackendDeclaration:
    from integrations.backends.awx import AwxBackend, AwxClient

    assert settings.awx_url is not None and settings.awx_token is not None
    client = AwxClient(
        settings.awx_url,
        settings.awx_token,
        api_path=settings.awx_api_path,
        verify_tls=settings.awx_verify_tls,
        timeout=settings.awx_timeout,
        max_attempts=settings.awx_max_attempts,
    )
    return AwxBackend(client, poll_interval=settings.awx_poll_interval)


def _automox(settings: Settings) -> BackendDeclaration:
    from integrations.backends.automox import AutomoxBackend, AutomoxClient

    assert settings.automox_api_key is not None and settings.automox_org is not None
    client = AutomoxClient(
        settings.automox_api_key,
        settings.automox_org,
        url=settings.automox_url,
        timeout=settings.automox_timeout,
        max_attempts=settings.automox_max_attempts,
    )
    return AutomoxBackend(
        client, settings.automox_journal_dir, poll_interval=settings.automox_poll_interval
    )


def _tanium(settings: Settings) -> BackendDeclaration:
    from integrations.backends.tanium import TaniumBackend, TaniumClient

    assert settings.tanium_url is not None and settings.tanium_token is not None
    client = TaniumClient(
        settings.tanium_url,
        settings.tanium_token,
        verify_tls=settings.tanium_verify_tls,
        ca_file=settings.tanium_ca_file,
        timeout=settings.tanium_timeout,
        max_attempts=settings.tanium_max_attempts,
    )
    return TaniumBackend(
        client, settings.tanium_journal_dir, poll_interval=settings.tanium_poll_interval
    )


def _ninjaone(settings: Settings) -> BackendDeclaration:
    from integrations.backends.ninjaone import NinjaOneBackend, NinjaOneClient

    assert settings.ninjaone_client_id and settings.ninjaone_client_secret is not None
    client = NinjaOneClient(
        settings.ninjaone_url,
        settings.ninjaone_client_id,
        settings.ninjaone_client_secret,
        scope=settings.ninjaone_scope,
        timeout=settings.ninjaone_timeout,
        max_attempts=settings.ninjaone_max_attempts,
    )
    return NinjaOneBackend(
        client, settings.ninjaone_journal_dir, poll_interval=settings.ninjaone_poll_interval
    )


def _satellite(settings: Settings) -> BackendDeclaration:
    from integrations.backends.satellite import SatelliteBackend, SatelliteClient

    assert settings.satellite_url and settings.satellite_user
    assert settings.satellite_password is not None
    client = SatelliteClient(
        settings.satellite_url,
        settings.satellite_user,
        settings.satellite_password,
        verify_tls=settings.satellite_verify_tls,
        ca_file=settings.satellite_ca_file,
        timeout=settings.satellite_timeout,
        max_attempts=settings.satellite_max_attempts,
    )
    return SatelliteBackend(client, poll_interval=settings.satellite_poll_interval)


def _intune(settings: Settings) -> BackendDeclaration:
    from integrations.backends.intune import GraphClient, IntuneBackend

    assert settings.intune_tenant_id and settings.intune_client_id
    assert settings.intune_client_secret is not None
    client = GraphClient(
        settings.intune_tenant_id,
        settings.intune_client_id,
        settings.intune_client_secret,
        graph_url=settings.intune_graph_url,
        login_url=settings.intune_login_url,
        timeout=settings.intune_timeout,
        max_attempts=settings.intune_max_attempts,
    )
    return IntuneBackend(
        client, settings.intune_journal_dir, poll_interval=settings.intune_poll_interval
    )


async def close_backends(backends: Mapping[str, BackendDeclaration]) -> None:
    """Close what the working backends hold (the AWX client's session, the Ansible
    backend's thread pool)."""
    for backend in backends.values():
        closing = getattr(backend, "close", None)
        if closing is None:
            continue
        result = closing()
        if inspect.isawaitable(result):
            await result


def tool_inventory(
    settings: Settings,
    backends: Mapping[str, BackendDeclaration] | None = None,
    *,
    checked: bool = True,
) -> ToolInventory:
    """The inventory: PATCHGATE_INVENTORY's files and its ``backend:NAME[:OPTIONS.yml]``
    entries (docs/inventory.md). ``backends``: the working backends (``serve``'s); None
    builds the ones the entries name from settings (those configured). Call ``load()`` (in
    the event loop that owns the backends) before ``hosts()``."""
    from integrations.inventory import FileInventory
    from integrations.inventory.backend_source import ToolInventory, parse_entry

    sources = [parse_entry(e) for e in settings.inventory_backend_entries]
    files = settings.checked_inventory_sources if checked else settings.inventory_sources
    if backends is None:
        names = {s.backend for s in sources}
        built: dict[str, BackendDeclaration] = {}
        for name in sorted(names):
            working = _working(settings, name)
            if working is not None:
                built[name] = working
        backends = built
    return ToolInventory(
        FileInventory(files, csv_columns=settings.csv_column_map) if files else None,
        sources,
        backends,
    )


async def read_inventory(settings: Settings) -> list[InventoryHost]:
    """Every inventory host now, the backends' included, read in this event loop (the
    CLI's way; the backends built for it are closed after)."""
    inventory = tool_inventory(settings)
    try:
        await inventory.load()
        return list(inventory.hosts())
    finally:
        await close_backends(inventory.backends)


# How often ``serve`` reads the hosts of its ``backend:`` inventory entries again.
TOOL_INVENTORY_RELOAD = 300.0


async def keep_loading(inventory: object, stop: asyncio.Event) -> None:
    """``serve``'s reading of its ``backend:`` inventory entries: at once, then every
    :data:`TOOL_INVENTORY_RELOAD` seconds, in serve's event loop (where the backends'
    HTTP sessions live), until ``stop``; a failed read is logged and the hosts last read
    are kept. A no-op for an inventory without backend entries."""
    from integrations.inventory.backend_source import ToolInventory

    if not isinstance(inventory, ToolInventory) or not inventory.sources:
        return
    while not stop.is_set():
        try:
            await inventory.load()
        except Exception as exc:  # logged, never fatal: the last hosts read stay
            log.warning("could not read the backends' inventory: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=TOOL_INVENTORY_RELOAD)


# The tool backends built from settings once configured (``_not_configured`` is None).
_BUILD: dict[str, Callable[[Settings], BackendDeclaration]] = {
    "awx": _awx,
    "automox": _automox,
    "satellite": _satellite,
    "tanium": _tanium,
    "ninjaone": _ninjaone,
    "intune": _intune,
}

"""The Executor and HealthChecker the engine drives: each host goes where its zone is.

A host without a zone (``patchgate_zone`` unset or empty) is worked on by the local
executor, as on a single machine. A host with one goes to that zone's workers through
a ``ZoneCalls`` (client.py), built on first use: until a host has a zone, Celery is not
imported and no broker is contacted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from integrations.zones.wire import decode_reply, encode_host, encode_value
from workflows.errors import ExecutorError
from workflows.ports import (
    ApplyResult,
    Executor,
    HealthChecker,
    HealthResult,
    HostAdvisory,
    HostFacts,
    InventoryHost,
    Preflight,
    RollbackResult,
    Simulation,
    UpgradablePackage,
)

ZONE_VAR = "patchgate_zone"


class ZoneCalls(Protocol):
    async def call(
        self, zone: str, op: str, host: Mapping[str, Any], args: Mapping[str, Any]
    ) -> Mapping[str, Any]: ...

    def close(self) -> None: ...


class ZoneRouter:
    """Implements the Executor port by routing each host to the leader or its zone."""

    def __init__(
        self,
        local: Executor,
        *,
        calls: Callable[[], ZoneCalls] | None,
        zone_var: str = ZONE_VAR,
    ) -> None:
        self.local = local
        self._factory = calls
        self._calls: ZoneCalls | None = None
        self.zone_var = zone_var

    @property
    def client(self) -> ZoneCalls | None:
        """The zone client if one was built (a host with a zone was worked on)."""
        return self._calls

    def zone_of(self, host: InventoryHost) -> str | None:
        value = host.vars.get(self.zone_var)
        return str(value) if value not in (None, "") else None

    def close_zones(self) -> None:
        """Stop the zone client (its monitor thread), if one was built."""
        if self._calls is not None:
            self._calls.close()
            self._calls = None

    def close(self) -> None:
        self.close_zones()
        close = getattr(self.local, "close", None)
        if close is not None:
            close()

    async def remote(self, zone: str, op: str, host: InventoryHost, args: Mapping[str, Any]) -> Any:
        if self._factory is None:
            raise ExecutorError(
                host.name,
                f"the host is in zone {zone} but PATCHGATE_BROKER_URL is not set: start the "
                f"zone's workers and set it, or remove {self.zone_var} from the host",
            )
        if self._calls is None:
            self._calls = self._factory()
        reply = await self._calls.call(zone, op, encode_host(host), encode_value(dict(args)))
        return decode_reply(op, reply)

    async def facts(self, host: InventoryHost) -> HostFacts:
        zone = self.zone_of(host)
        if zone is None:
            return await self.local.facts(host)
        result: HostFacts = await self.remote(zone, "facts", host, {})
        return result

    async def list_upgradable(self, host: InventoryHost) -> Sequence[UpgradablePackage]:
        zone = self.zone_of(host)
        if zone is None:
            return await self.local.list_upgradable(host)
        result: Sequence[UpgradablePackage] = await self.remote(zone, "list_upgradable", host, {})
        return result

    async def simulate(self, host: InventoryHost, packages: Sequence[str]) -> Simulation:
        zone = self.zone_of(host)
        if zone is None:
            return await self.local.simulate(host, packages)
        args = {"packages": list(packages)}
        result: Simulation = await self.remote(zone, "simulate", host, args)
        return result

    async def installed(
        self, host: InventoryHost, packages: Sequence[str]
    ) -> Mapping[str, str | None]:
        zone = self.zone_of(host)
        if zone is None:
            return await self.local.installed(host, packages)
        args = {"packages": list(packages)}
        result: Mapping[str, str | None] = await self.remote(zone, "installed", host, args)
        return result

    async def preflight(self, host: InventoryHost, patchset: Mapping[str, str]) -> Preflight:
        zone = self.zone_of(host)
        if zone is None:
            return await self.local.preflight(host, patchset)
        result: Preflight = await self.remote(zone, "preflight", host, {"patchset": patchset})
        return result

    async def apply(
        self, host: InventoryHost, patchset: Mapping[str, str], *, op_id: str
    ) -> ApplyResult:
        zone = self.zone_of(host)
        if zone is None:
            return await self.local.apply(host, patchset, op_id=op_id)
        args = {"patchset": patchset, "op_id": op_id}
        result: ApplyResult = await self.remote(zone, "apply", host, args)
        return result

    async def apply_status(self, host: InventoryHost, *, op_id: str) -> ApplyResult | None:
        zone = self.zone_of(host)
        if zone is None:
            return await self.local.apply_status(host, op_id=op_id)
        result: ApplyResult | None = await self.remote(zone, "apply_status", host, {"op_id": op_id})
        return result

    async def rollback(
        self, host: InventoryHost, snapshot: Mapping[str, str | None]
    ) -> RollbackResult:
        zone = self.zone_of(host)
        if zone is None:
            return await self.local.rollback(host, snapshot)
        result: RollbackResult = await self.remote(zone, "rollback", host, {"snapshot": snapshot})
        return result

    async def reboot_required(self, host: InventoryHost) -> bool:
        zone = self.zone_of(host)
        if zone is None:
            return await self.local.reboot_required(host)
        result: bool = await self.remote(zone, "reboot_required", host, {})
        return result

    async def host_advisories(self, host: InventoryHost) -> Sequence[HostAdvisory]:
        zone = self.zone_of(host)
        if zone is None:
            return await self.local.host_advisories(host)
        result: Sequence[HostAdvisory] = await self.remote(zone, "host_advisories", host, {})
        return result

    async def reboot(self, host: InventoryHost) -> str:
        zone = self.zone_of(host)
        if zone is None:
            return await self.local.reboot(host)
        result: str = await self.remote(zone, "reboot", host, {})
        return result

    def __getattr__(self, name: str) -> Any:
        # Extras of the local executor (run_argv for `patchgate ssh check`, test hooks).
        return getattr(self.local, name)


class ZoneHealthChecker:
    """Implements the HealthChecker port: a zoned host's checks run in its zone."""

    def __init__(self, local: HealthChecker, router: ZoneRouter) -> None:
        self.local = local
        self.router = router

    async def check(self, host: InventoryHost, checks: Sequence[Any]) -> Sequence[HealthResult]:
        zone = self.router.zone_of(host)
        if zone is None:
            return await self.local.check(host, checks)
        dumped = [c.model_dump(mode="json") if hasattr(c, "model_dump") else c for c in checks]
        result: Sequence[HealthResult] = await self.router.remote(
            zone, "health", host, {"checks": dumped}
        )
        return result

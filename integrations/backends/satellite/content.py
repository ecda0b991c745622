"""What Satellite knows of hosts, as PatchGate values: inventory, applicable errata,
installed versions (pure parsing plus the Katello/Foreman reads that feed it).

Calls: ``GET /api/v2/hosts`` (search, paged), ``GET /api/v2/hosts/:id/errata`` (the
errata applicable to a host, Katello), ``GET /api/v2/hosts/:id/packages`` (installed
packages, Katello). Shapes: Foreman's host index with Katello's facets
(``subscription_facet_attributes``, ``content_facet_attributes``, ``host_collections``);
Katello's erratum (``errata_id``, ``type``, ``severity``, ``cves[].cve_id``,
``packages``: NVRA strings); Katello's package (``name``, ``epoch``, ``version``,
``release``, ``arch``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from integrations.backends.satellite.client import SatelliteClient
from integrations.backends.satellite.errors import SatelliteError
from workflows.ports import HostAdvisory, InventoryHost, UpgradablePackage

SEVERITY = {"critical": "critical", "important": "high", "moderate": "medium", "low": "low"}
ARCHES = frozenset({"x86_64", "aarch64", "ppc64le", "s390x", "noarch", "i686", "src"})


def split_nvra(nvra: str) -> tuple[str, str]:
    """``openssl-1:3.0.13-1.el9.x86_64`` -> (``openssl``, ``1:3.0.13-1.el9``)."""
    text = nvra.strip()
    head, dot, arch = text.rpartition(".")
    if dot and arch in ARCHES:
        text = head
    parts = text.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        raise SatelliteError(f"Satellite: {nvra!r} is not a package name-version-release")
    return parts[0], f"{parts[1]}-{parts[2]}"


def package_version(item: Mapping[str, Any]) -> str:
    """A Katello package's version as PatchGate writes it: ``[epoch:]version[-release]``."""
    version = str(item.get("version") or "")
    if not version:
        raise SatelliteError(f"Satellite: package {item.get('name')!r} has no version")
    release = str(item.get("release") or "")
    epoch = str(item.get("epoch") or "")
    text = f"{version}-{release}" if release else version
    return f"{epoch}:{text}" if epoch and epoch != "0" else text


def coverage_gap(host: Mapping[str, Any], *, now: dt.datetime, stale_hours: float) -> str | None:
    """Why Satellite cannot patch this host, or None: no subscription (no content host),
    or no check-in for longer than ``stale_hours``."""
    facet = host.get("subscription_facet_attributes")
    if not isinstance(facet, Mapping) or not facet.get("uuid"):
        return "not registered (no subscription): Satellite cannot install on it"
    seen = facet.get("last_checkin")
    if not seen:
        return "registered but never checked in"
    try:
        when = dt.datetime.fromisoformat(str(seen).replace(" UTC", "+00:00").replace("Z", "+00:00"))
    except ValueError:
        return f"last check-in {seen!r} is not a time Satellite documents"
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if now - when > dt.timedelta(hours=stale_hours):
        return f"not checked in since {when.isoformat()} (unreachable?)"
    return None


def inventory_host(
    host: Mapping[str, Any], *, now: dt.datetime, stale_hours: float
) -> InventoryHost:
    name = host.get("name")
    if not isinstance(name, str) or not name:
        raise SatelliteError(f"Satellite: a host without a name ({host.get('id')!r})")
    groups = set()
    if host.get("hostgroup_title"):
        groups.add(str(host["hostgroup_title"]))
    for collection in host.get("host_collections") or ():
        if isinstance(collection, Mapping) and collection.get("name"):
            groups.add(str(collection["name"]))
    content = host.get("content_facet_attributes")
    content = content if isinstance(content, Mapping) else {}
    variables: dict[str, Any] = {
        "satellite_id": host.get("id"),
        "satellite_os": host.get("operatingsystem_name"),
        "satellite_arch": host.get("architecture_name"),
        "satellite_hostgroup": host.get("hostgroup_title"),
        "satellite_lifecycle_environment": content.get("lifecycle_environment_name"),
        "satellite_content_view": content.get("content_view_name"),
    }
    gap = coverage_gap(host, now=now, stale_hours=stale_hours)
    if gap:
        variables["satellite_coverage_gap"] = gap
        variables["patchgate_unreachable"] = gap  # a coverage gap of the imported inventory
    return InventoryHost(
        name=name,
        groups=frozenset(groups),
        vars={k: v for k, v in variables.items() if v is not None},
    )


async def list_hosts(
    client: SatelliteClient, search: str | None, organization_id: int | None
) -> list[dict[str, Any]]:
    params: dict[str, str | int] = {}
    if search:
        params["search"] = search
    if organization_id is not None:
        params["organization_id"] = organization_id
    return [h async for h in client.pages("/api/v2/hosts", params)]


async def host_rows(
    client: SatelliteClient, names: Sequence[str], organization_id: int | None
) -> dict[str, dict[str, Any]]:
    """Satellite's host (index row, with an integer id) of each named host (names
    already checked to be plain), searched 100 names at a time."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(names), 100):
        chunk = names[start : start + 100]
        search = f"name ^ ({','.join(chunk)})"
        for host in await list_hosts(client, search, organization_id):
            if host.get("name") in chunk and isinstance(host.get("id"), int):
                found[str(host["name"])] = host
    return found


async def host_ids(
    client: SatelliteClient, names: Sequence[str], organization_id: int | None
) -> dict[str, int]:
    """Satellite's id of each named host (names already checked to be plain)."""
    rows = await host_rows(client, names, organization_id)
    return {name: int(row["id"]) for name, row in rows.items()}


def advisories(errata: Iterable[Mapping[str, Any]]) -> list[HostAdvisory]:
    out = []
    for erratum in errata:
        ident = erratum.get("errata_id")
        if not ident:
            raise SatelliteError("Satellite: an erratum without errata_id")
        packages: dict[str, str | None] = {}
        for nvra in erratum.get("packages") or ():
            name, version = split_nvra(str(nvra))
            packages[name] = version
        cves = tuple(
            str(c.get("cve_id")) for c in erratum.get("cves") or () if isinstance(c, Mapping)
        )
        severity = SEVERITY.get(str(erratum.get("severity") or "").lower())
        out.append(HostAdvisory(id=str(ident), packages=packages, cves=cves, severity=severity))
    return out


def upgradable(
    errata: Iterable[Mapping[str, Any]], installed: Mapping[str, str]
) -> list[UpgradablePackage]:
    """The packages the applicable errata upgrade (only those installed on the host)."""
    found: dict[str, UpgradablePackage] = {}
    for erratum in errata:
        security = str(erratum.get("type")) == "security"
        for nvra in erratum.get("packages") or ():
            name, version = split_nvra(str(nvra))
            if name not in installed:
                continue
            prior = found.get(name)
            found[name] = UpgradablePackage(
                name=name,
                current=installed[name],
                candidate=version,
                security=security or bool(prior and prior.security),
                source=str(erratum.get("errata_id")),
            )
    return sorted(found.values(), key=lambda p: p.name)


async def installed_versions(
    client: SatelliteClient, host_id: int, names: Sequence[str] | None = None
) -> dict[str, str]:
    params: dict[str, str | int] = {}
    if names:
        params["search"] = f"name ^ ({','.join(names)})"
    out: dict[str, str] = {}
    async for item in client.pages(f"/api/v2/hosts/{host_id}/packages", params):
        out[str(item.get("name"))] = package_version(item)
    return out

"""The API Gateway queries the backend sends and the reading of their answers, with a
clear error when a field PatchGate relies on is missing or of another type.

Every document here follows a published example (docs/tanium.md lists them):

- ``endpoints(first:, after:, filter:, source:)`` with ``edges { node {...} }`` and
  ``pageInfo { hasNextPage endCursor }``: "Reference: Paginated query syntax" of the API
  Gateway user guide (cursors are opaque and expire five minutes after their last use);
- the ``filter`` shapes ``{any, filters: [{path: "name", value}]}`` and ``{sensor: {name,
  column}, op: "EQ", value}``, ``source: {ts: {stableWaitTime}}`` (a live question
  through the Tanium Server rather than the Tanium Data Service cache),
  ``collectionInfo { success }`` and ``sensorReadings(sensors: [...]) { columns { sensor
  { name } name values } }``, and the two Patch sensors with their columns: Tanium's own
  published Microsoft Sentinel playbooks (Tanium-Apply-SecurityPatches-*).
- ``eidLastSeen`` and ``os { name platform }`` of an endpoint: fields of the Gateway's
  ``Endpoint`` type; Tanium publishes the full schema only inside the product (the query
  explorer's Documentation Explorer), so these names come from public Gateway clients.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.backends.tanium.client import TaniumClient
from integrations.backends.tanium.errors import TaniumError

APPLICABILITY = "Patch - Patch List Applicability"
DEPLOYMENT_RESULTS = "Patch - Deployment Results"

_NODE = "id name eidLastSeen os { name platform }"


def _endpoints_query(name: str, node: str, *, live: bool) -> str:
    """An ``endpoints`` query paged by ``first``/``after``; ``live`` ones take a
    ``source`` and ask whether the collection succeeded."""
    params = "$first: Int, $after: Cursor, $filter: EndpointFieldFilter"
    params += ", $source: EndpointSource" if live else ""
    source = "source: $source, " if live else ""
    info = "collectionInfo { success }" if live else ""
    return f"""
query {name}({params}) {{
  endpoints({source}first: $first, after: $after, filter: $filter) {{
    edges {{ node {{ {node} }} }}
    {info}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""


_COLUMNS = "columns { sensor { name } name values }"
_BINS = '[{name: "bin", value: "0"}, {name: "binCount", value: "1"}]'
ENDPOINTS = _endpoints_query("patchgateEndpoints", _NODE, live=False)
PATCHES = _endpoints_query(
    "patchgateApplicability",
    f'{_NODE} sensorReadings(sensors: [{{name: "{APPLICABILITY}", params: {_BINS}}}])'
    f" {{ {_COLUMNS} }}",
    live=True,
)
RESULTS = _endpoints_query(
    "patchgateDeploymentResults",
    f'name sensorReadings(sensors: [{{name: "{DEPLOYMENT_RESULTS}"}}]) {{ {_COLUMNS} }}',
    live=True,
)


@dataclass(frozen=True)
class Endpoint:
    id: str
    name: str
    os_name: str
    platform: str  # Windows, Mac, Linux, ...
    last_seen: dt.datetime | None


def names_filter(names: Sequence[str]) -> dict[str, Any]:
    return {"any": True, "filters": [{"path": "name", "value": n} for n in names]}


def deployments_filter(ids: Sequence[str]) -> dict[str, Any]:
    sensor = {"name": DEPLOYMENT_RESULTS, "column": "Deployment ID"}
    return {"any": True, "filters": [{"sensor": sensor, "op": "EQ", "value": i} for i in ids]}


def live(stable_wait: int) -> dict[str, Any]:
    return {"ts": {"stableWaitTime": stable_wait}}


@dataclass
class Completion:
    """Whether every page of a live question said its collection succeeded
    (``collectionInfo.success``; a query that does not ask for it is complete)."""

    complete: bool = True


async def nodes(
    client: TaniumClient,
    document: str,
    variables: Mapping[str, Any],
    *,
    first: int,
    completion: Completion | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every endpoint node across the pages, following ``pageInfo.endCursor``."""
    after: str | None = None
    seen: set[str] = set()
    while True:
        data = await client.graphql(document, {**variables, "first": first, "after": after})
        conn = data.get("endpoints")
        if not isinstance(conn, dict):
            raise TaniumError("Tanium Gateway: the answer has no endpoints connection")
        info = conn.get("collectionInfo")
        if completion is not None and isinstance(info, dict) and info.get("success") is False:
            completion.complete = False
        edges = conn.get("edges")
        if not isinstance(edges, list):
            raise TaniumError("Tanium Gateway: endpoints.edges is not a list")
        for edge in edges:
            node = edge.get("node") if isinstance(edge, dict) else None
            if not isinstance(node, dict):
                raise TaniumError("Tanium Gateway: an endpoints edge without a node")
            yield node
        page = conn.get("pageInfo")
        if not isinstance(page, dict) or not isinstance(page.get("hasNextPage"), bool):
            raise TaniumError("Tanium Gateway: endpoints.pageInfo.hasNextPage is missing")
        if not page["hasNextPage"]:
            return
        cursor = page.get("endCursor")
        if not isinstance(cursor, str) or not cursor or cursor in seen:
            raise TaniumError(f"Tanium Gateway: a next page without a new endCursor ({cursor!r})")
        seen.add(cursor)
        after = cursor


def endpoint(node: Mapping[str, Any]) -> Endpoint:
    eid, name = node.get("id"), node.get("name")
    if not isinstance(eid, str | int) or isinstance(eid, bool) or not isinstance(name, str):
        raise TaniumError(f"Tanium endpoint {eid!r}: id or name is not the documented type")
    found = node.get("os")
    os_: Mapping[str, Any] = found if isinstance(found, dict) else {}
    return Endpoint(
        id=str(eid),
        name=name,
        os_name=str(os_.get("name") or ""),
        platform=str(os_.get("platform") or ""),
        last_seen=parse_time(node.get("eidLastSeen")),
    )


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def sensor_rows(node: Mapping[str, Any], sensor: str) -> list[dict[str, str]]:
    """The rows of one sensor's reading: its columns are parallel ``values`` lists."""
    readings = node.get("sensorReadings")
    if not isinstance(readings, dict) or not isinstance(readings.get("columns"), list):
        raise TaniumError(f"Tanium endpoint {node.get('name')!r}: no sensorReadings.columns")
    columns: dict[str, list[str]] = {}
    for col in readings["columns"]:
        if not isinstance(col, dict):
            continue
        owner = col.get("sensor")
        if isinstance(owner, dict) and owner.get("name") not in (None, sensor):
            continue
        values, name = col.get("values"), col.get("name")
        if not isinstance(name, str) or not isinstance(values, list):
            raise TaniumError(f"Tanium sensor {sensor!r}: a column without name or values")
        columns[name] = [str(v) for v in values]
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise TaniumError(f"Tanium sensor {sensor!r}: columns of different lengths {lengths}")
    count = lengths.pop() if lengths else 0
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def require(rows: Sequence[Mapping[str, str]], sensor: str, *names: str) -> None:
    missing = sorted({n for row in rows for n in names if n not in row})
    if missing:
        raise TaniumError(f"Tanium sensor {sensor!r}: no column {', '.join(missing)}")

"""The reading of Tanium's answers (issue 21): sensor columns into rows, endpoint nodes,
deployment results into a host's outcome, and a changed or hostile shape as a clear
error rather than a crash; the deployment body as Tanium's published playbook sends it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from integrations.backends.tanium import TaniumError
from integrations.backends.tanium import gateway as gw
from integrations.backends.tanium import mapping as mp
from integrations.backends.tanium.options import parse_options

RES = gw.DEPLOYMENT_RESULTS


def _node(sensor: str, columns: dict[str, list[Any]], **extra: Any) -> dict[str, Any]:
    cols = [{"sensor": {"name": sensor}, "name": n, "values": v} for n, v in columns.items()]
    return {"name": "win1", "sensorReadings": {"columns": cols}, **extra}


def test_sensor_columns_become_rows_and_other_sensors_columns_are_ignored() -> None:
    node = _node(
        RES,
        {"Deployment ID": ["7", "7"], "Patch Title": ["A", "B"], "Result": ["Succeeded", "Failed"]},
    )
    node["sensorReadings"]["columns"].append(
        {"sensor": {"name": "Other"}, "name": "X", "values": [1]}
    )
    assert gw.sensor_rows(node, RES) == [
        {"Deployment ID": "7", "Patch Title": "A", "Result": "Succeeded"},
        {"Deployment ID": "7", "Patch Title": "B", "Result": "Failed"},
    ]


@pytest.mark.parametrize(
    ("node", "says"),
    [
        (_node(RES, {"Deployment ID": ["7"], "Result": []}), "columns of different lengths"),
        ({"name": "win1"}, "no sensorReadings.columns"),
        (
            {"name": "win1", "sensorReadings": {"columns": [{"name": "X", "values": "no"}]}},
            "without name or values",
        ),
    ],
)
def test_a_changed_sensor_shape_is_a_clear_error(node: dict[str, Any], says: str) -> None:
    with pytest.raises(TaniumError, match=says):
        gw.sensor_rows(node, RES)


def test_a_missing_column_is_named() -> None:
    with pytest.raises(TaniumError, match="no column Result"):
        gw.require([{"Deployment ID": "7", "Patch Title": "A"}], RES, "Deployment ID", "Result")


def test_endpoint_nodes_and_their_hostile_or_missing_values() -> None:
    ep = gw.endpoint(
        {
            "id": 12,
            "name": "win1",
            "eidLastSeen": "2026-12-07T10:00:00Z",
            "os": {"platform": "Windows"},
        }
    )
    assert (ep.id, ep.platform, ep.os_name) == ("12", "Windows", "")
    assert ep.last_seen == dt.datetime(2026, 12, 7, 10, tzinfo=dt.UTC)
    assert (
        gw.endpoint({"id": "1", "name": "x", "eidLastSeen": "yesterday", "os": None}).last_seen
        is None
    )
    for bad in ({"id": True, "name": "x"}, {"id": "1", "name": ["x"]}, {"name": "x"}):
        with pytest.raises(TaniumError, match="not the documented type"):
            gw.endpoint(bad)


PATCHES = {"u1": "Title A", "u2": "Title B"}


def _rows(*results: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"Deployment ID": d, "Patch Title": t, "Result": r} for d, t, r in results]


def test_a_host_is_applied_only_when_every_pinned_title_succeeded_in_its_deployment() -> None:
    assert mp.judge("win1", "7", PATCHES, _rows(("7", "Title A", "Succeeded"))) is None
    other = _rows(("7", "Title A", "Succeeded"), ("8", "Title B", "Succeeded"))
    assert mp.judge("win1", "7", PATCHES, other) is None  # another deployment's row
    done = mp.judge(
        "win1", "7", PATCHES, _rows(("7", "Title A", "Succeeded"), ("7", "Title B", "Succeeded"))
    )
    assert done is not None and done.status == "applied" and done.after == PATCHES
    failed = mp.judge("win1", "7", PATCHES, _rows(("7", "Title B", "Failed")))
    assert failed is not None and failed.status == "failed" and failed.failed_task == "Title B"
    assert "deployment 7" in failed.output and failed.after == {}


def test_the_deployment_body_follows_the_published_example() -> None:
    start = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)
    body = mp.deployment_body(
        name="k win1",
        description="d",
        content_set_id=42,
        platform="Mac",
        uids=["u1"],
        limiting_group_id=2,
        target_group_id=9,
        start=start,
        opts=parse_options({"window": 3600}),
    )
    assert body["osType"] == "macos" and body["type"] == "install"
    assert (body["startTime"], body["endTime"]) == ("2026-12-07T10:00:00Z", "2026-12-07T11:00:00Z")
    assert body["targetLimitingGroupIds"] == [2] and body["targetedQuestionGroupIds"] == [9]
    assert body["restart"] is False and body["overrideMaintenanceWindows"] is False
    assert (
        mp.os_type("Linux") == mp.os_type("Solaris") == "linux"
        and mp.os_type("Windows") == "windows"
    )


class _Pages:
    """A stand-in client answering the given Gateway ``data`` in turn."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.afters: list[Any] = []

    async def graphql(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        self.afters.append(variables["after"])
        return self.answers.pop(0)


def _page(names: list[str], more: bool, cursor: str | None, success: bool = True) -> dict[str, Any]:
    edges = [{"node": {"id": n, "name": n}} for n in names]
    info = {"hasNextPage": more, "endCursor": cursor}
    return {"endpoints": {"edges": edges, "pageInfo": info, "collectionInfo": {"success": success}}}


async def test_pages_are_followed_by_cursor_and_a_looping_cursor_is_an_error() -> None:
    client = _Pages(_page(["a", "b"], True, "c1"), _page(["c"], False, None, success=False))
    completion = gw.Completion()
    got = [
        n["name"] async for n in gw.nodes(client, gw.ENDPOINTS, {}, first=2, completion=completion)
    ]  # type: ignore[arg-type]
    assert got == ["a", "b", "c"] and client.afters == [None, "c1"]
    assert not completion.complete  # the last page's collection did not succeed
    looping = _Pages(_page(["a"], True, "c1"), _page(["b"], True, "c1"))
    with pytest.raises(TaniumError, match="without a new endCursor"):
        [n async for n in gw.nodes(looping, gw.ENDPOINTS, {}, first=1)]  # type: ignore[arg-type]
    with pytest.raises(TaniumError, match=r"pageInfo\.hasNextPage is missing"):
        [n async for n in gw.nodes(_Pages({"endpoints": {"edges": []}}), gw.ENDPOINTS, {}, first=1)]  # type: ignore[arg-type]

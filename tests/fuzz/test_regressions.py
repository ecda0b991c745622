"""Regression tests for what the fuzz suite found (each fixed in its own commit)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from integrations.advisories import load_kev, parse_osv
from integrations.advisories.osv import AdvisoryDataError, load_osv_dir
from integrations.inventory.sources import load_file
from integrations.packages.versions import compare_debian, compare_rpm
from tests.enginekit import OPERATORS, Rig
from tests.fuzz import targets
from workflows import exceptions
from workflows.db import Database, read_only, unit_of_work
from workflows.errors import InputError, InventoryError, PlanError
from workflows.gates import Actor
from workflows.models import HostException
from workflows.plans import load_plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


# --- "^...$" with re.match let a trailing newline through ---------------------------------


def _weekly() -> dict[str, Any]:
    return yaml.safe_load(  # type: ignore[no-any-return]
        (EXAMPLES / "plans" / "weekly.yml").read_text()
    )


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (("name",), "name"),
        (("rings", 0, "name"), "rings[0].name"),
        (("slack", "channel"), "slack.channel"),
    ],
)
def test_a_plan_identifier_with_a_trailing_newline_is_refused(
    tmp_path: Path, where: tuple[str | int, ...], message: str
) -> None:
    plan = _weekly()
    node: Any = plan
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = f"{node[where[-1]]}\n"
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump(plan))
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert f"{message}:" in str(caught.value)


def test_the_example_plan_itself_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump(_weekly()))
    assert load_plan(path).name == "weekly"


@pytest.mark.parametrize(
    "text",
    [
        'hosts:\n  - name: "web-01\\n"\n',
        'all:\n  hosts:\n    "web-01\\n": {ansible_host: 10.0.0.1}\n',
    ],
)
def test_an_inventory_host_name_with_a_trailing_newline_is_refused(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    with pytest.raises(InventoryError, match="not a valid host name"):
        load_file(path)


async def test_an_exception_for_a_host_or_package_with_a_trailing_newline_is_refused(
    db: Database,
) -> None:
    rig = Rig(db)
    now = rig.clock.now()
    for bad in ({"host": "dev-02\n"}, {"host": "dev-02", "package": "openssl\n"},
                {"host": "dev-02", "package": "openssl", "cve": "CVE-2024-12345\n"}):  # fmt: skip
        async with unit_of_work(rig.db) as session:
            with pytest.raises(InputError, match="is not a"):
                await exceptions.grant(
                    session, actor=Actor(next(iter(OPERATORS))), operators=OPERATORS,
                    owner="U0OWNER1", reason="vendor freeze", now=now,
                    expires_at=now + dt.timedelta(days=3), max_days=30, **bad,
                )  # fmt: skip
    async with read_only(rig.db) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(HostException)) == 0


# --- OSV and KEV loaders: wrong JSON types were TypeError/AttributeError ------------------


def _osv() -> dict[str, Any]:
    return json.loads(  # type: ignore[no-any-return]
        (FIXTURES / "advisories" / "osv" / "DSA-5999-1.json").read_text()
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"severity": 2}, "severity must be a list"),
        ({"aliases": True}, "aliases must be a list"),
        ({"upstream": "CVE-2024-0001"}, "upstream must be a list"),
        ({"database_specific": "high"}, "database_specific must be an object"),
        ({"affected": [True]}, r"affected\[0\] has no package name"),
        ({"affected": [{"package": {"name": ["x"]}}]}, r"affected\[0\] has no package name"),
        ({"affected": [{"package": {"name": "openssl"}, "ranges": 5}]}, "ranges must be a list"),
        ({"affected": [{"package": {"name": "openssl"}, "ranges": [{"events": {}}]}]},
         "events must be a list"),
        ({"affected": [{"package": {"name": "openssl"},
                        "ranges": [{"events": [{"fixed": ["1.0"]}]}]}]}, "is not a version"),
        ({"affected": [{"package": {"name": "openssl"},
                        "ranges": [{"events": [{"fixed": ""}]}]}]}, "is not a version"),
        ({"affected": [{"package": {"name": "openssl"},
                        "ranges": [{"events": [{"fixed": "1.0\n"}]}]}]}, "is not a version"),
    ],
)  # fmt: skip
def test_an_osv_record_of_the_wrong_shape_is_a_located_advisory_error(
    change: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(AdvisoryDataError, match=message) as caught:
        parse_osv({**_osv(), **change}, where="x.json")
    assert str(caught.value).startswith("x.json: record DSA-5999-1")


def test_the_osv_fixture_still_loads_with_its_fixed_versions() -> None:
    records = load_osv_dir(FIXTURES / "advisories" / "osv")
    fixed = {name: v for r in records for name, v in r.packages.items()}
    assert fixed and all(v is None or compare_debian(v, v) == 0 for v in fixed.values())


def test_a_deeply_nested_osv_file_is_an_advisory_error(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(AdvisoryDataError, match="nested too deeply"):
        load_osv_dir(tmp_path)


def test_a_kev_file_that_is_not_utf8_is_an_advisory_error(tmp_path: Path) -> None:
    path = tmp_path / "kev.json"
    path.write_bytes(b'{"vulnerabilities": ["\xac"]}')
    with pytest.raises(AdvisoryDataError, match="not UTF-8"):
        load_kev(path)


def test_a_kev_cve_id_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kev.json"
    path.write_text(json.dumps({"vulnerabilities": [{"cveID": "CVE-2024-0001\n"}]}))
    with pytest.raises(AdvisoryDataError, match="bad cveID"):
        load_kev(path)


# --- version comparison: ValueError from python-debian / int() --------------------------


@pytest.mark.parametrize(("a", "b"), [("", "1.0"), (":", "1.0"), ("1.0", "1: 2")])
def test_comparing_a_non_debian_version_is_an_input_error(a: str, b: str) -> None:
    with pytest.raises(InputError, match="cannot compare Debian versions"):
        compare_debian(a, b)


@pytest.mark.parametrize("bad", ["a:1.0", "x:1-2", "\u0661:1.0"])
def test_an_rpm_version_whose_epoch_is_not_a_number_is_an_input_error(bad: str) -> None:
    with pytest.raises(InputError, match="epoch is not a number"):
        compare_rpm(bad, "1.0-1")


def test_the_targets_accept_their_regression_inputs() -> None:
    """The inputs above, through the fuzz targets: none is an unexpected exception."""
    targets.osv_record(json.dumps({**_osv(), "severity": 2}).encode())
    targets.kev_catalogue(b"\xac")
    targets.debian_versions(b":\x001.0")
    targets.rpm_versions(b"a:1\x001")

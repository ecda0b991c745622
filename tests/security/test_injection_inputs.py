"""Hostile names where PatchGate reads them (inventory, plan, selectors, /patch text):
refused with a clear message that names the value, so they never reach a host.
(What does reach a host is checked on a real one in test_injection_lab.py.)"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.slack.commands.handlers import default_registry
from bot.slack.commands.parser import parse
from bot.slack.commands.registry import UsageError
from integrations.inventory.sources import load_file
from workflows.errors import InventoryError, PlanError, SelectorError
from workflows.plans import load_plan, parse_selector

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOSTILE_NAMES = (
    "web;id", "web$(id)", "web`id`", "web|id", "web&id", "web id", "web\nid", "web\n",
    "-oProxyCommand=id", "--foo", "'web'", '"web"', "wéb", "web\u200b", "web\\id", "web>x",
)  # fmt: skip


def _csv(name: str) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows([["name", "address"], [name, "10.0.0.1"]])
    return buf.getvalue()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize(
    ("suffix", "render"),
    [
        (".yml", lambda n: yaml.safe_dump({"hosts": [{"name": n}]})),
        (".yml", lambda n: yaml.safe_dump({"all": {"hosts": {n: {"ansible_host": "10.0.0.1"}}}})),
        (".csv", _csv),
    ],
    ids=["static", "ansible-yaml", "csv"],
)
def test_an_inventory_host_name_with_shell_characters_is_refused_by_name(
    tmp_path: Path, name: str, suffix: str, render: object
) -> None:
    path = tmp_path / f"hosts{suffix}"
    path.write_text(render(name))  # type: ignore[operator]
    if suffix == ".csv" and name == "web\n":  # CSV cells are stripped: the host is "web"
        assert [h.name for h in load_file(path)] == ["web"]
        return
    with pytest.raises(InventoryError) as caught:
        load_file(path)
    assert "host name" in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "line", ["web;id", "web$(id)", "web`id`", "-oProxyCommand=id", "wéb", "'web x'"]
)
def test_an_ini_host_line_with_shell_characters_is_refused(tmp_path: Path, line: str) -> None:
    path = tmp_path / "hosts.ini"
    path.write_text(f"[web]\n{line}\n")
    with pytest.raises(InventoryError, match="host name"):
        load_file(path)


def _plan(tmp_path: Path, change: dict[str, Any]) -> Path:
    plan = yaml.safe_load((EXAMPLES / "plans" / "weekly.yml").read_text())
    plan.update(change)
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump(plan))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "weekly;id"}, "name:"),
        ({"name": "--weekly"}, "name:"),
        ({"health_checks": [{"name": "u", "type": "systemd", "unit": "--host=evil"}]},
         "is not a systemd unit name"),
        ({"health_checks": [{"name": "u", "type": "systemd", "unit": "app; reboot"}]},
         "is not a systemd unit name"),
        ({"health_checks": [{"name": "c", "type": "command", "argv": ["/bin/true", "a\x00b"]}]},
         "may not contain a NUL"),
    ],
)  # fmt: skip
def test_a_plan_with_a_hostile_name_unit_or_argument_is_refused_with_its_line(
    tmp_path: Path,
    change: dict[str, Any],
    message: str,
) -> None:
    path = _plan(tmp_path, change)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert message in str(caught.value)
    assert f"{path}:" in str(caught.value)


def test_a_health_check_unit_that_is_a_real_unit_name_loads(tmp_path: Path) -> None:
    check = {"name": "u", "type": "systemd", "unit": "getty@tty1.service"}
    assert load_plan(_plan(tmp_path, {"health_checks": [check]})).health_checks[0].unit


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_selector_with_shell_characters_is_refused_with_its_column(name: str) -> None:
    if name in ("--foo", "web\n"):  # - is a name character; a newline is white space
        assert str(parse_selector(f"host:{name}")) == f"host:{name.strip()}"
        return
    with pytest.raises(SelectorError, match="column"):
        parse_selector(f"host:{name}")


@pytest.mark.parametrize(
    "text",
    ['run "weekly', "run weekly'", 'hosts "group:web', "approve 12 --hash 'abc"],
)
def test_unbalanced_quotes_in_slack_text_are_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="check your quotes"):
        parse(text, default_registry())


@pytest.mark.parametrize("text", ["hosts 'group:web; reboot'", "hosts host:$(id)", "hosts --foo"])
def test_a_slack_selector_with_shell_characters_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse(text, default_registry())

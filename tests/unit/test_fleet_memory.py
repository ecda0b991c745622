"""What serve holds per host of a large fleet (issue 24: under 1 GB at 100,000 hosts):
inventory hosts without a ``__dict__`` each, one set object per distinct set of groups,
and a fleet view of the columns Slack's answers show, not ORM rows."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

from bot.slack.fleet import HostRow
from integrations.inventory.sources import load_yaml
from workflows.ports import InventoryHost


def test_an_inventory_host_has_no_dict_of_its_own() -> None:
    host = InventoryHost(name="web-1", groups=frozenset({"web"}))
    assert not hasattr(host, "__dict__")
    with pytest.raises(AttributeError):
        host.name = "other"  # type: ignore[misc]  # still frozen


def test_hosts_of_the_same_groups_share_one_set(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    lines = ["all:", "  children:", "    web:", "      hosts:"]
    lines += [f"        web-{i:03d}: {{patchgate_tags: [blue]}}" for i in range(50)]
    lines += ["    db:", "      hosts:", "        db-1: {}"]
    inventory.write_text("\n".join(lines) + "\n")
    hosts = {h.name: h for h in load_yaml(inventory)}
    webs = [h for h in hosts.values() if h.name.startswith("web-")]
    assert len({id(h.groups) for h in webs}) == 1  # one object for 50 hosts
    assert len({id(h.tags) for h in webs}) == 1
    assert webs[0].groups == frozenset({"web"}) and webs[0].tags == frozenset({"blue"})
    assert hosts["db-1"].groups == frozenset({"db"})


def test_a_fleet_view_row_is_small() -> None:
    row = HostRow("linux", "debian", "12", None, True, None, dt.datetime(2026, 1, 1))
    assert not hasattr(row, "__dict__")
    assert sys.getsizeof(row) < 120

"""``serve`` reads the inventory from worker threads: callers at once parse it once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from integrations.inventory import FileInventory
from workflows.ports import InventoryHost


def test_callers_at_once_parse_an_edited_inventory_once(tmp_path: Path) -> None:
    source = tmp_path / "hosts.fleet"
    source.write_text("web-01\n")
    parses = 0
    count = threading.Lock()

    def slow_loader(path: Path) -> list[InventoryHost]:
        nonlocal parses
        with count:
            parses += 1
        time.sleep(0.05)  # long enough for every caller to arrive while it runs
        return [InventoryHost(name=line) for line in path.read_text().split()]

    inventory = FileInventory([source])
    inventory.formats[".fleet"] = slow_loader
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: inventory.hosts(), range(8)))
    assert parses == 1
    assert all([h.name for h in hosts] == ["web-01"] for hosts in results)

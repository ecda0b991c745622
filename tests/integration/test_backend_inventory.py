"""Inventory imported from a backend (issue 19 item 1 / issue 20 item 2): the hosts an
AWX inventory manages, read by the real AwxBackend over HTTP from the AWX v2 emulator,
merged with a file inventory and shown by `patchgate inventory show` and placed by a
plan's selectors in `patchgate plan layout`, each run as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from integrations.inventory.backend_source import (
    BackendSource,
    ToolInventory,
    parse_entry,
    read_source,
    tool_gaps,
)
from integrations.testing.batch import FakeBatchBackend
from integrations.testing.executor import RecordingExecutor
from tests.fakes.awx_api import AwxEmulator
from workflows.backends import Capabilities
from workflows.errors import InventoryError
from workflows.ports import InventoryHost


@pytest_asyncio.fixture
async def awx() -> AsyncIterator[AwxEmulator]:
    emulator = AwxEmulator(steps=2)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


async def patchgate(*args: str, cwd: Path, **env: str) -> tuple[int, str, str]:
    """The CLI as a real process; awaited, so the emulator in this loop keeps serving."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli.main",
        *args,
        cwd=cwd,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


def site(awx: AwxEmulator, tmp_path: Path) -> dict[str, str]:
    inventory = awx.add_inventory(
        "linux",
        hosts={
            "web1": {"ansible_host": "10.0.0.11"},
            "web2": {"ansible_host": "10.0.0.12"},
            "db1": {"ansible_host": "10.0.0.21"},
            "old1": {},
        },
        groups={"web": ["web1", "web2"], "db": ["db1"]},
        disabled={"old1"},
    )
    (tmp_path / "awx.yml").write_text(f"inventory: {inventory}\n")
    (tmp_path / "static.yml").write_text(
        "hosts:\n  - name: dev-01\n    address: 10.0.1.1\n    groups: [dev]\n"
    )
    return {
        "PATCHGATE_INVENTORY": f"{tmp_path / 'static.yml'},backend:awx:{tmp_path / 'awx.yml'}",
        "PATCHGATE_AWX_URL": awx.url,
        "PATCHGATE_AWX_TOKEN": awx.token,
    }


async def test_inventory_show_lists_the_awx_hosts_with_their_source_beside_the_files(
    awx: AwxEmulator, tmp_path: Path
) -> None:
    env = site(awx, tmp_path)
    code, out, err = await patchgate("inventory", "show", "--json", cwd=tmp_path, **env)
    assert code == 0, err
    hosts = {h["name"]: h for h in json.loads(out)["hosts"]}
    assert sorted(hosts) == ["db1", "dev-01", "web1", "web2"]  # old1 is disabled in AWX
    assert hosts["web1"]["source"] == "backend:awx"
    assert hosts["web1"]["address"] == "10.0.0.11"
    assert hosts["web1"]["groups"] == ["web"]
    assert isinstance(hosts["web1"]["vars"]["awx_host_id"], int)
    assert hosts["dev-01"]["source"] == "file"
    assert awx.token not in out + err
    code, out, _ = await patchgate("inventory", "show", "group:web", cwd=tmp_path, **env)
    assert code == 0
    assert "source=backend:awx" in out and "2 host(s)" in out


async def test_a_plans_selectors_place_the_imported_hosts_in_its_rings(
    awx: AwxEmulator, tmp_path: Path
) -> None:
    env = site(awx, tmp_path)
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "fleet.yml").write_text(
        textwrap.dedent(
            """\
            name: fleet
            rings:
              - name: dev
                hosts: group:dev
              - name: web
                hosts: group:web
              - name: db
                hosts: group:db
            """
        )
    )
    code, out, err = await patchgate(
        "plan", "layout", "fleet", "--json", cwd=tmp_path, PATCHGATE_PLANS_DIR="plans", **env
    )
    assert code == 0, err
    rings = {r["name"]: sorted(r["hosts"]) for r in json.loads(out)["rings"]}
    assert rings == {"dev": ["dev-01"], "web": ["web1", "web2"], "db": ["db1"]}


async def test_an_unreachable_awx_is_a_clear_error_naming_the_entry(tmp_path: Path) -> None:
    (tmp_path / "awx.yml").write_text("inventory: 3\n")
    code, out, err = await patchgate(
        "inventory",
        "show",
        cwd=tmp_path,
        PATCHGATE_INVENTORY=f"backend:awx:{tmp_path / 'awx.yml'}",
        PATCHGATE_AWX_URL="http://127.0.0.1:9",
        PATCHGATE_AWX_TOKEN="not-shown-anywhere",
        PATCHGATE_AWX_MAX_ATTEMPTS="1",
    )
    assert code != 0
    assert f"backend:awx:{tmp_path / 'awx.yml'}" in err
    assert "not-shown-anywhere" not in out + err
    assert "Traceback" not in err


def test_a_backend_entry_names_its_backend_and_options_file(tmp_path: Path) -> None:
    (tmp_path / "o.yml").write_text("inventory: 7\n")
    assert parse_entry("backend:awx") == BackendSource("backend:awx", "awx", {})
    assert parse_entry(f"backend:awx:{tmp_path / 'o.yml'}").options == {"inventory": 7}
    with pytest.raises(InventoryError, match="name a backend"):
        parse_entry("backend:")
    (tmp_path / "bad.yml").write_text("- a list\n")
    with pytest.raises(InventoryError, match="must hold a mapping"):
        parse_entry(f"backend:awx:{tmp_path / 'bad.yml'}")


async def test_a_backend_that_cannot_list_hosts_or_is_unknown_is_refused() -> None:
    batch = FakeBatchBackend(RecordingExecutor(), capabilities_=Capabilities(inventory=False))
    with pytest.raises(InventoryError, match="cannot list the hosts"):
        await read_source(BackendSource("backend:batch", "batch"), {"batch": batch})
    with pytest.raises(InventoryError, match="no backend named 'nope'"):
        await read_source(BackendSource("backend:nope", "nope"), {"batch": batch})


async def test_hosts_the_tool_cannot_reach_are_coverage_gaps_with_its_reason() -> None:
    class Tool(FakeBatchBackend):
        async def hosts(self, options: object) -> list[InventoryHost]:  # type: ignore[override]
            return [
                InventoryHost(name="a"),
                InventoryHost(name="b", vars={"patchgate_unreachable": "agent disconnected"}),
            ]

    tool = Tool(RecordingExecutor(), capabilities_=Capabilities(inventory=True))
    inventory = ToolInventory(None, [BackendSource("backend:tool", "tool")], {"tool": tool})
    assert inventory.hosts() == []  # nothing loaded yet: hosts() never does I/O itself
    await inventory.load()
    hosts = inventory.hosts()
    assert [h.name for h in hosts] == ["a", "b"]
    assert tool_gaps(hosts) == {"b": "backend:tool: agent disconnected"}


async def test_serve_reads_the_tools_hosts_in_its_loop_and_keeps_them_when_a_read_fails(
    awx: AwxEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import app
    from bot.backends import backend_catalog, close_backends, keep_loading
    from bot.settings import Settings

    env = site(awx, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(executor="recording")
    inventory = app._inventory(settings)
    assert isinstance(inventory, ToolInventory)
    assert [h.name for h in inventory.hosts()] == ["dev-01"]  # before serve reads the tool
    backends = backend_catalog(settings, RecordingExecutor())
    inventory.backends = backends  # as serve's Server does
    stop = asyncio.Event()
    loading = asyncio.create_task(keep_loading(inventory, stop))
    try:
        for _ in range(200):
            if len(inventory.hosts()) == 4:
                break
            await asyncio.sleep(0.02)
        # The engine and the refresh jobs read it from a worker thread, as the files.
        hosts = await asyncio.to_thread(inventory.hosts)
        assert sorted(h.name for h in hosts) == ["db1", "dev-01", "web1", "web2"]
        await awx.stop()  # the tool goes away: a later read fails, the hosts stay
        with pytest.raises(InventoryError):
            await inventory.load()
        assert len(inventory.hosts()) == 4
    finally:
        stop.set()
        await loading
        await close_backends(backends)

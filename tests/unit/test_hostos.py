"""OS families (issue 21): the inventory's word for a host's family (checked in every
inventory format and a tool's import), how a host's OS is shown, and which health
checks a Windows or macOS host refuses; patchset.csv recomputed from rollout.pinned."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from integrations.inventory import backend_source
from integrations.inventory.backend_source import BackendSource, read_source
from integrations.inventory.sources import FileInventory
from workflows.backends import Capabilities
from workflows.errors import InventoryError
from workflows.hostos import check_problems, family_word, host_family, os_label, split_checks
from workflows.plans import HealthCheck
from workflows.ports import OS_BUILD_VAR, OS_FAMILY_VAR, InventoryHost
from workflows.reports._patchsets import HEADER, check_patchsets, entry_rows
from workflows.reports._recompute import EventFacts

SYSTEMD = HealthCheck(name="nginx", type="systemd", unit="nginx")
COMMAND = HealthCheck(name="probe", type="command", argv=["/bin/true"])
HTTP = HealthCheck(name="web", type="http", url="http://{address}/")
TCP = HealthCheck(name="rdp", type="tcp", port=3389)


def test_family_words_of_the_tools_map_to_linux_windows_macos() -> None:
    assert [family_word(w) for w in ("Windows", "WIN32", "Mac", "macOS", "Darwin", "Linux")] == [
        "windows",
        "windows",
        "macos",
        "macos",
        "macos",
        "linux",
    ]
    with pytest.raises(ValueError, match="patchgate_os_family must be one of linux, windows"):
        family_word("solaris")


def test_a_hosts_family_is_the_inventorys_word_else_its_facts_else_linux() -> None:
    named = InventoryHost(name="w", vars={OS_FAMILY_VAR: "windows"})
    assert host_family(named, "macos") == "windows"
    assert host_family(InventoryHost(name="m"), "macos") == "macos"
    assert host_family(InventoryHost(name="l"), None) == "linux"
    assert host_family(InventoryHost(name="x"), "beos") == "linux"


def test_a_linux_os_shows_as_before_windows_and_macos_with_their_build() -> None:
    assert os_label(None, "ubuntu", "22.04") == "ubuntu 22.04"
    assert os_label("linux", "rhel", "9.3", "ignored") == "rhel 9.3"
    assert os_label("windows", "windows", "10.0.22631", "22631.3007") == (
        "windows 10.0.22631 build 22631.3007"
    )
    assert os_label("macos", "Mac OS", "14.2", "23C64") == "macos Mac OS 14.2 build 23C64"
    assert os_label("windows", None, None, "22631.3007") == "windows build 22631.3007"


def test_command_and_systemd_checks_are_refused_on_windows_and_macos_hosts_only() -> None:
    checks = [HTTP, SYSTEMD, TCP, COMMAND]
    run, refused = split_checks("windows", checks)
    assert run == [HTTP, TCP]
    assert set(refused) == {1, 3}
    assert (
        "a systemd check runs on the host over SSH and cannot run on a windows host" in (refused[1])
    )
    assert split_checks("linux", checks) == (checks, {})


def test_a_ring_whose_hosts_the_inventory_names_windows_is_refused_per_family() -> None:
    hosts = [
        ("prod", InventoryHost(name=f"win-{i}", vars={OS_FAMILY_VAR: "windows"})) for i in range(7)
    ]
    hosts += [("prod", InventoryHost(name="mac-1", vars={OS_FAMILY_VAR: "macos"}))]
    hosts += [("prod", InventoryHost(name="linux-1"))]
    hosts += [("web", InventoryHost(name="win-web", vars={OS_FAMILY_VAR: "windows"}))]
    checks = {"prod": [HTTP, SYSTEMD], "web": [HTTP, TCP]}
    problems = check_problems(hosts, lambda ring: checks[ring])
    assert problems == [
        "ring prod: its systemd check 'nginx' cannot run on macos host(s) mac-1 (they run "
        "over SSH); give the ring http, tcp or tool checks",
        "ring prod: its systemd check 'nginx' cannot run on windows host(s) win-0, win-1, "
        "win-2, win-3, win-4 (+2) (they run over SSH); give the ring http, tcp or tool checks",
    ]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    return path


def test_the_inventory_checks_and_normalises_the_family_and_build(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "all:\n  hosts:\n    win-01:\n      patchgate_os_family: Windows\n"
        "      patchgate_os_build: 22631.3007\n    web-01: {}\n",
    )
    hosts = {h.name: h for h in FileInventory([path]).hosts()}
    assert hosts["win-01"].vars[OS_FAMILY_VAR] == "windows"
    assert hosts["win-01"].vars[OS_BUILD_VAR] == "22631.3007"
    assert OS_FAMILY_VAR not in hosts["web-01"].vars


def test_an_unknown_family_in_the_inventory_is_an_error_naming_the_host(tmp_path: Path) -> None:
    path = _write(tmp_path, "all:\n  hosts:\n    box-01:\n      patchgate_os_family: amiga\n")
    with pytest.raises(InventoryError, match=r"box-01.*patchgate_os_family must be one of"):
        FileInventory([path]).hosts()


class _Tool:
    name = "tool"

    def __init__(self, family: str) -> None:
        self.family = family

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        return Capabilities(inventory=True)

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        return []

    async def hosts(self, options: Mapping[str, Any]) -> Sequence[InventoryHost]:
        return [InventoryHost(name="dev-1", vars={OS_FAMILY_VAR: self.family})]


async def test_a_tools_import_is_checked_as_a_files_is() -> None:
    source = BackendSource(entry="backend:tool", backend="tool", options={})
    (host,) = await read_source(source, {"tool": _Tool("Mac")})  # type: ignore[dict-item]
    assert host.vars[OS_FAMILY_VAR] == "macos"
    assert host.vars[backend_source.SOURCE_VAR] == "backend:tool"
    with pytest.raises(InventoryError, match="backend:tool: host dev-1: patchgate_os_family"):
        await read_source(source, {"tool": _Tool("OS/2")})  # type: ignore[dict-item]


PATCHSET = {"windows-10.0.22631-x64": {"KB5034441": "rev-3"}, "debian-12-amd64": {"bash": "5.2"}}
UPDATES = {
    "windows-10.0.22631-x64": {
        "KB5034441": {
            "kind": "update",
            "kb": "KB5034441",
            "title": "CU",
            "classification": "security",
        }
    }
}


def _csv_rows(rows: list[list[Any]]) -> list[dict[str, str]]:
    return [{h: "" if v is None else str(v) for h, v in zip(HEADER, r, strict=True)} for r in rows]


def test_patchset_csv_rows_carry_the_kind_and_kb_and_verify_against_the_pinned_event() -> None:
    rows = _csv_rows(entry_rows(7, PATCHSET, UPDATES))
    assert [(r["platform"], r["kind"], r["name"], r["kb"]) for r in rows] == [
        ("debian-12-amd64", "package", "bash", ""),
        ("windows-10.0.22631-x64", "update", "KB5034441", "KB5034441"),
    ]
    facts = EventFacts(pinned={"7": PATCHSET}, pinned_updates={"7": UPDATES})
    problems: list[str] = []
    check_patchsets(rows, facts, problems)
    assert problems == []
    tampered = [dict(r) for r in rows]
    tampered[1]["title"] = "Something else"
    del tampered[0]
    tampered.append({**rows[0], "name": "zsh"})
    check_patchsets(tampered, facts, problems)
    assert problems == [
        "patchset.csv: no row for bash (debian-12-amd64) of rollout 7 (rollout.pinned)",
        "patchset.csv row 2 (rollout 7, KB5034441): title is 'Something else', the "
        "rollout.pinned event says 'CU'",
        "patchset.csv row 3 (rollout 7, zsh): an entry the rollout.pinned event does not pin",
    ]

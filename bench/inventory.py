"""Inventory benchmark: a generated 10,000-host inventory (Ansible YAML and INI), loaded,
merged and evaluated against 20 selectors. Prints wall and CPU time (median of
``--runs``), peak RSS, and, as the same-run baseline, PyYAML's C loader with its own
constructor against PatchGate's YAML reader on the same file.

    python bench/inventory.py [--hosts 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import TypeVar

import yaml

from integrations.inventory import FileInventory
from integrations.inventory.sources import _loader, read_yaml
from workflows.plans import parse_selector
from workflows.ports import InventoryHost

T = TypeVar("T")

SELECTORS = [
    "all",
    "group:prod",
    "group:staging",
    "tag:pci",
    "group:web and group:prod",
    "group:db or group:cache",
    "not group:prod",
    "host:web-0001",
    "host:web-00*",
    "group:prod and not tag:pci",
    "(group:web or group:db) and tag:pci",
    "env:production",
    "env:stag*",
    "group:dc[1-2]",
    "group:dc3 and not (group:web or group:db)",
    "tag:edge or tag:pci",
    "group:cache and env:production",
    "not (group:web and group:dc1)",
    "host:db-* and group:prod",
    "group:web and group:dc2 and tag:edge",
]
ROLES = ("web", "db", "cache", "app")


def generate(directory: Path, hosts: int) -> tuple[Path, Path]:
    per_role = hosts // len(ROLES)
    yml = ["all:", "  children:"]
    ini: list[str] = []
    for role in ROLES:
        yml += [f"    {role}:", "      hosts:"]
        ini.append(f"[{role}]")
        for i in range(per_role):
            name = f"{role}-{i:04d}"
            tags = "[pci]" if i % 10 == 0 else "[edge]" if i % 7 == 0 else "[]"
            address = f"10.{i % 250}.{i // 250}.1"
            yml.append(f"        {name}: {{ansible_host: {address}, patchgate_tags: {tags}}}")
            ini.append(f"{name} ansible_host=10.{i % 250}.{i // 250}.2")
    for env in ("prod", "staging"):
        yml += [
            f"    {env}:",
            "      vars:",
            f"        environment: {env}uction" if env == "prod" else f"        environment: {env}",
            "      children:",
        ]
        ini += [f"[{env}:children]"]
        for role in ROLES[:2] if env == "prod" else ROLES[2:]:
            yml.append(f"        {role}:")
            ini.append(role)
    for dc in (1, 2, 3):
        yml += [f"    dc{dc}:", "      hosts:"]
        ini.append(f"[dc{dc}]")
        for role in ROLES:
            for i in range(dc - 1, per_role, 3):
                yml.append(f"        {role}-{i:04d}:")
                ini.append(f"{role}-{i:04d}")
    a, b = directory / "hosts.yml", directory / "hosts.ini"
    a.write_text("\n".join(yml) + "\n")
    b.write_text("\n".join(ini) + "\n")
    return a, b


@dataclass
class Timing:
    wall: list[float]
    cpu: list[float]

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    def __str__(self) -> str:
        return f"{median(self.wall):.2f}s wall / {median(self.cpu):.2f}s CPU"


def timed(timing: Timing, work: Callable[[], T]) -> T:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    timing.add(time.perf_counter() - wall, time.process_time() - cpu)
    return result


def stock_yaml(path: Path) -> object:
    """The baseline: PyYAML's C loader with its own (pure-Python) constructor."""
    with path.open("rb") as stream:
        return yaml.load(stream, Loader=_loader(path))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10_000, help="hosts per inventory")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        yml, ini = generate(Path(tmp), args.hosts)
        selectors = [parse_selector(s) for s in SELECTORS]
        stock, fast = Timing([], []), Timing([], [])
        for _ in range(args.runs):  # interleaved, so machine load hits both alike
            expected = timed(stock, lambda: stock_yaml(yml))
            assert timed(fast, lambda: read_yaml(yml)) == expected
        print(f"YAML parse, PyYAML CSafeLoader + its constructor (baseline): {stock}")
        print(
            f"YAML parse, CSafeLoader + PatchGate's construction:         {fast} "
            f"({median(stock.cpu) / median(fast.cpu):.1f}x less CPU)"
        )
        for label, path in (("YAML", yml), ("INI", ini)):
            load, match = Timing([], []), Timing([], [])
            for _ in range(args.runs):
                inventory = FileInventory([path])
                hosts = timed(load, inventory.hosts)

                def evaluate(found: Sequence[InventoryHost] = hosts) -> list[int]:
                    return [sum(1 for h in found if s.matches(h)) for s in selectors]

                counts = timed(match, evaluate)
            total_wall = median(load.wall) + median(match.wall)
            total_cpu = median(load.cpu) + median(match.cpu)
            verdict = "met" if total_wall < 2.0 else "MISSED"
            print(
                f"{label}: {len(hosts)} hosts, load+merge {load}, 20 selectors {match}, "
                f"total {total_wall:.2f}s wall / {total_cpu:.2f}s CPU (target < 2 s: {verdict})"
            )
            print("  matches per selector:", counts)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB (target < 200 MB: {'met' if peak_mb < 200 else 'MISSED'})")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

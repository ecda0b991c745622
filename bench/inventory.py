"""Inventory benchmark: a generated 10,000-host inventory (Ansible YAML and INI), loaded,
merged and evaluated against 20 selectors. Prints wall time and peak RSS.

    python bench/inventory.py [--hosts 10000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from integrations.inventory import FileInventory
from workflows.selectors import parse_selector

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10_000, help="hosts per inventory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        yml, ini = generate(Path(tmp), args.hosts)
        for label, path in (("YAML", yml), ("INI", ini)):
            start = time.perf_counter()
            hosts = FileInventory([path]).hosts()
            loaded = time.perf_counter()
            selectors = [parse_selector(s) for s in SELECTORS]
            counts = [sum(1 for h in hosts if s.matches(h)) for s in selectors]
            done = time.perf_counter()
            print(
                f"{label}: {len(hosts)} hosts, load+merge {loaded - start:.2f}s, "
                f"20 selectors {done - loaded:.2f}s, total {done - start:.2f}s"
            )
            print("  matches per selector:", counts)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()

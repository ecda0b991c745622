"""Inventory adapters: Ansible YAML, static YAML (more formats register in ``sources``)."""

from integrations.inventory.sources import FileInventory, load_file, register_format, source_files

__all__ = ["FileInventory", "load_file", "register_format", "source_files"]

"""JSON documents kept by job key, one file each in a directory, written atomically:
the local journals of the tool backends whose tool keeps nowhere PatchGate could find a
job again by its key (``automox``, ``tanium``, ``intune``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}")


class KeyFiles:
    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a job key usable as a journal name: {key!r}")
        return self._dir / f"{key}.json"

    def read(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
        return data

    def write(self, key: str, data: dict[str, Any]) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, path)

"""``patchgate serve`` never migrates: on a database that is not at head it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dbutil import BACKENDS, fresh_database_url
from tests.e2e.harness import base_env, free_port, patchgate


@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_on_an_unmigrated_database_exits_non_zero_with_one_clear_line(
    backend: str, tmp_path: Path
) -> None:
    with fresh_database_url(backend, tmp_path) as url:
        env = base_env(
            url,
            PATCHGATE_PORT=str(free_port()),
            PATCHGATE_RECORDING_STATE_FILE=str(tmp_path / "fleet.json"),
            PATCHGATE_LOG_LEVEL="WARNING",
        )
        result = patchgate(env, "serve", cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("patchgate: the database has no PatchGate schema")
    assert lines[0].endswith("run `patchgate db upgrade` first")

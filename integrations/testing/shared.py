"""The recording executor shared by several processes (a leader and its zone workers).

Each changing step (apply, rollback, reboot) reads what the others wrote to the state
file (its journal's new lines) and journals its change under an exclusive file lock, so
two processes never lose each other's changes and an op id is checked and recorded
atomically. ``apply`` behaves like the SSH executor's detached command: the host changes
and the result is recorded under the op id at once, then ``detached_delay`` passes (the
executor polling the host) before the result is returned; a process killed meanwhile
leaves a patched host whose result never came back, for ``apply_status`` to find.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from integrations.testing.executor import RecordingExecutor
from workflows.ports import ApplyResult, InventoryHost, RollbackResult


class SharedRecordingExecutor(RecordingExecutor):
    def __init__(self, *, state_file: Path) -> None:
        super().__init__(state_file=state_file)
        self._step_lock = asyncio.Lock()
        # Seconds between the host's change and the result (the base apply_delay, which
        # passes before any change, stays 0 here).
        self.detached_delay = 0.0

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        store = self._store
        assert store is not None
        async with self._step_lock:
            with store.locked():  # the journal's appends inside take it again (re-entrant)
                if self.state_file is not None and self.state_file.exists():
                    self.state = store.catch_up(self.state)
                yield

    async def apply(
        self, host: InventoryHost, patchset: Mapping[str, str], *, op_id: str
    ) -> ApplyResult:
        async with self._exclusive():
            result = await super().apply(host, patchset, op_id=op_id)
        if self.detached_delay:
            await asyncio.sleep(self.detached_delay)
        return result

    async def rollback(
        self, host: InventoryHost, snapshot: Mapping[str, str | None]
    ) -> RollbackResult:
        async with self._exclusive():
            return await super().rollback(host, snapshot)

    async def reboot(self, host: InventoryHost) -> str:
        async with self._exclusive():
            return await super().reboot(host)

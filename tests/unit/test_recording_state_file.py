"""The recording executor's state file is shared by processes (a leader and a standby
serve): saves from several writers at once must never clash on a temp file."""

from __future__ import annotations

import threading
from pathlib import Path

from integrations.testing.executor import RecordingExecutor


def test_writers_sharing_a_state_file_never_lose_a_save(tmp_path: Path) -> None:
    state_file = tmp_path / "fleet.json"
    writers = [RecordingExecutor.demo(state_file=state_file) for _ in range(4)]
    errors: list[BaseException] = []

    def save_many(executor: RecordingExecutor) -> None:
        try:
            for _ in range(200):
                executor.save()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=save_many, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert RecordingExecutor(state_file=state_file).state == writers[0].state
    assert not list(tmp_path.glob("*.tmp"))

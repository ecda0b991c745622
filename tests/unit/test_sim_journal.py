"""The recording executor's state file as a snapshot and an append-only journal
(integrations/testing/simjournal.py): replayed on load, a torn last line ignored with a
warning, compacted rarely and atomically, and the bytes written per apply constant
however large the fleet is."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from integrations.testing.executor import RecordingExecutor
from integrations.testing.simjournal import StateStore, load_state
from integrations.testing.simstate import SimHost, SimState
from workflows.ports import InventoryHost

NEW = {"openssl": "3.0.13-1"}


def world(n: int) -> SimState:
    state = SimState(repo={"openssl": ["3.0.11-1", "3.0.13-1"]})
    for i in range(n):
        state.hosts[f"h-{i:06d}"] = SimHost(installed={"openssl": "3.0.11-1"}, boot_id="b")
    return state


def executor(path: Path, n: int, *, compact_min: int | None = None) -> RecordingExecutor:
    ex = RecordingExecutor(world(n), state_file=path)
    if compact_min is not None:
        assert ex._store is not None
        ex._store.compact_min = compact_min
    ex.save()
    return ex


def apply_all(ex: RecordingExecutor, names: list[str]) -> None:
    async def go() -> None:
        for name in names:
            await ex.apply(InventoryHost(name=name), NEW, op_id=f"op-{name}")

    asyncio.run(go())


def test_applies_are_journal_lines_replayed_on_load(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    ex = executor(path, 50)
    snapshot = path.read_bytes()
    apply_all(ex, ["h-000003", "h-000007"])
    assert path.read_bytes() == snapshot  # the snapshot is not rewritten per apply
    lines = path.with_name("fleet.json.journal").read_text().splitlines()
    assert json.loads(lines[0]) == {"generation": 1}
    assert [json.loads(line)["host"] for line in lines[1:]] == ["h-000003", "h-000007"]
    again = load_state(path)
    assert again.hosts["h-000003"].applied_ops == ["op-h-000003"]
    assert again.hosts["h-000003"].installed == NEW
    assert again.hosts["h-000004"].installed == {"openssl": "3.0.11-1"}
    assert again == ex.state


def test_world_changes_are_journalled_too(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    ex = executor(path, 3)
    ex.fail("h-000001", "apply", "error")
    ex.publish("openssl", "3.0.14-1", security=True)
    ex.add_host("new-1", {"openssl": "1"})
    again = RecordingExecutor(state_file=path)
    assert again.state.failures == {"h-000001": {"apply": "error"}}
    assert "3.0.14-1" in again.state.repo["openssl"]
    assert again.state.hosts["new-1"].installed == {"openssl": "1"}


def test_a_torn_last_line_is_ignored_with_a_warning_and_cut_before_the_next_append(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fleet.json"
    ex = executor(path, 10)
    apply_all(ex, ["h-000001"])
    journal = path.with_name("fleet.json.journal")
    with journal.open("ab") as f:  # a crash in the middle of writing a line
        f.write(b'{"host":"h-000002","sim":{"installed":{"openss')
    with caplog.at_level(logging.WARNING):
        state = load_state(path)
    assert "torn last line" in caplog.text
    assert state.hosts["h-000001"].applied_ops == ["op-h-000001"]  # nothing applied lost
    assert state.hosts["h-000002"].applied_ops == []
    # A process started after the crash applies again: the torn bytes are cut first.
    after = RecordingExecutor(state_file=path)
    apply_all(after, ["h-000002"])
    assert all(json.loads(line) for line in journal.read_text().splitlines())
    state = load_state(path)
    assert state.hosts["h-000001"].applied_ops == ["op-h-000001"]
    assert state.hosts["h-000002"].applied_ops == ["op-h-000002"]


def test_compaction_folds_the_journal_into_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    ex = executor(path, 40, compact_min=1)
    store = ex._store
    assert store is not None
    names = sorted(ex.state.hosts)
    apply_all(ex, names)
    assert store.compactions >= 2  # the journal outgrew the snapshot, more than once
    snapshot = json.loads(path.read_text())
    journal = path.with_name("fleet.json.journal").read_text().splitlines()
    assert json.loads(journal[0]) == {"generation": snapshot["generation"]}
    assert len(journal) - 1 < len(names)  # the rest is in the snapshot
    state = load_state(path)
    assert all(state.hosts[n].applied_ops == [f"op-{n}"] for n in names)
    assert not list(tmp_path.glob("*.tmp"))


def test_a_crash_between_the_snapshot_and_the_new_journal_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "fleet.json"
    ex = executor(path, 20)
    apply_all(ex, ["h-000001", "h-000002"])
    store = ex._store
    assert store is not None

    def crash() -> None:
        raise SystemExit("killed after the snapshot's rename")

    monkeypatch.setattr(store, "_new_journal", crash)
    with pytest.raises(SystemExit):
        ex.save()  # the snapshot (generation 2) is in place, the journal still says 1
    assert json.loads(path.read_text())["generation"] == 2
    state = load_state(path)  # the stale journal is not replayed twice, nor needed
    assert state.hosts["h-000001"].applied_ops == ["op-h-000001"]
    after = RecordingExecutor(state_file=path)
    apply_all(after, ["h-000003"])
    state = load_state(path)
    assert [state.hosts[f"h-00000{i}"].applied_ops for i in (1, 2, 3)] == [
        ["op-h-000001"],
        ["op-h-000002"],
        ["op-h-000003"],
    ]


def test_processes_sharing_the_file_see_each_others_applies_and_compactions(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fleet.json"
    leader = executor(path, 30, compact_min=1)
    standby = RecordingExecutor(state_file=path)
    assert standby._store is not None
    standby._store.compact_min = 1
    apply_all(leader, ["h-000001"])
    apply_all(standby, ["h-000002"])  # reads the leader's line first
    apply_all(leader, ["h-000003"])  # and the other way round
    for ex in (leader, standby):
        asyncio.run(ex.facts(InventoryHost(name="h-000000")))  # a step reads what is new
        assert [len(ex.state.hosts[f"h-00000{i}"].applied_ops) for i in (1, 2, 3)] == [1, 1, 1]
    apply_all(standby, [f"h-0000{i:02d}" for i in range(10, 30)])  # compacts
    assert standby._store is not None and standby._store.compactions >= 1
    asyncio.run(leader.facts(InventoryHost(name="h-000000")))
    assert leader.state == standby.state == load_state(path)


def test_bytes_written_per_apply_stay_constant_as_the_fleet_grows(tmp_path: Path) -> None:
    # 3 times the snapshot's size in applies at each size, so compactions are included.
    small = bytes_per_apply_over(tmp_path, 200)
    large = bytes_per_apply_over(tmp_path, 3200)
    line = len(json.dumps({"host": "h-000001", "sim": {}})) + 150
    assert small < 6 * line and large < 6 * line
    assert large < 1.5 * small  # a whole-file rewrite per apply would be 16 times


def bytes_per_apply_over(tmp_path: Path, n: int) -> float:
    path = tmp_path / f"fleet-{n}.json"
    ex = executor(path, n, compact_min=1)
    store = ex._store
    assert store is not None
    names = sorted(ex.state.hosts)
    before = store.bytes_written
    # Every host applied, then a second op on each: the journal outgrows the snapshot.
    apply_all(ex, names)
    ops = [(name, f"op2-{name}") for name in names]

    async def again() -> None:
        for name, op in ops:
            await ex.apply(InventoryHost(name=name), NEW, op_id=op)

    asyncio.run(again())
    assert store.compactions >= 1
    return (store.bytes_written - before) / (2 * n)


def test_store_without_a_snapshot_writes_one_on_its_first_change(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    ex = RecordingExecutor(world(2), state_file=path)  # never saved
    apply_all(ex, ["h-000000"])
    assert load_state(path).hosts["h-000000"].applied_ops == ["op-h-000000"]
    assert StateStore(path).load() == ex.state

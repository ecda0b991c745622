"""A rollout's layout (rings, batches, host runs) is written in short transactions
(workflows/engine/_laying.py): the rollout moves to ``assessing`` in the last one, and
after a crash between two of them the engine lays it out again, never doubling a row.
The pin writes each host's share of the set in short transactions too (_pin.py)."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa

from tests.enginekit import Rig
from workflows import audit
from workflows.db import Database, read_only
from workflows.engine import _context, _laying, _pin
from workflows.models import HostRun, Ring
from workflows.ports import InventoryHost

CHUNK = 7


class Crash(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the engine swallows it."""


def fleet() -> list[InventoryHost]:
    hosts = [InventoryHost(name=f"dev-{i:02d}", groups=frozenset({"dev"})) for i in range(4)]
    hosts += [InventoryHost(name=f"stg-{i:02d}", groups=frozenset({"staging"})) for i in range(8)]
    hosts += [InventoryHost(name=f"prod-{i:02d}", groups=frozenset({"prod"})) for i in range(18)]
    return hosts


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_laying, "LAYOUT_FIRST", CHUNK)
    monkeypatch.setattr(_laying, "LAYOUT_CHUNK", CHUNK)
    monkeypatch.setattr(_pin, "PIN_FIRST", CHUNK)
    monkeypatch.setattr(_pin, "PIN_CHUNK", CHUNK)
    # Sized by the count only, however slow the machine (chunks shrink past 0.2 s each).
    monkeypatch.setattr(_context, "CHUNK_SECONDS", 1000.0)


async def laid_out(db: Database, rollout_id: int) -> tuple[Counter[str], dict[str, int]]:
    async with read_only(db) as session:
        runs = sa.select(HostRun.host_name).where(HostRun.rollout_id == rollout_id)
        names = Counter(await session.scalars(runs))
        rings_of = sa.select(Ring.name, Ring.host_count).where(Ring.rollout_id == rollout_id)
        rings = {name: count for name, count in await session.execute(rings_of)}
    return names, rings


async def test_a_large_layout_is_written_in_chunks_then_assessed(db: Database) -> None:
    rig = Rig(db, hosts=fleet())
    rollout_id = await rig.start()
    steps: list[str] = []
    await rig.engine(steps.append).run_until_idle()
    layout_steps = [s for s in steps if s in ("rollout.laying_out", "rollout.assessing")]
    # 30 host runs in chunks of 7: four chunks, then the fifth with the state change.
    assert layout_steps == ["rollout.laying_out"] * 4 + ["rollout.assessing"]
    names, rings = await laid_out(db, rollout_id)
    assert set(names.values()) == {1} and len(names) == 30
    assert rings == {"dev": 4, "staging": 8, "prod": 18}
    assert (await rig.rollout(rollout_id)).state == "awaiting_approval"


@pytest.mark.parametrize("crash_at", [1, 2, 4])
async def test_a_crash_mid_layout_is_laid_out_again_never_doubled(
    db: Database, crash_at: int
) -> None:
    rig = Rig(db, hosts=fleet())
    rollout_id = await rig.start()
    seen = 0

    def hook(step: str) -> None:
        nonlocal seen
        if step == "rollout.laying_out":
            seen += 1
            if seen == crash_at:
                raise Crash(step)

    with pytest.raises(BaseException) as crashed:
        await rig.engine(hook).run_until_idle()
    assert "Crash" in repr(crashed.value)
    names, _ = await laid_out(db, rollout_id)
    assert sum(names.values()) == crash_at * CHUNK  # what the crash left
    assert (await rig.rollout(rollout_id)).state == "scheduled"  # not assessing yet

    steps: list[str] = []
    await rig.engine(steps.append).run_until_idle()
    assert steps.count("rollout.laying_out") == 4  # the whole layout again
    names, rings = await laid_out(db, rollout_id)
    assert set(names.values()) == {1} and len(names) == 30
    assert rings == {"dev": 4, "staging": 8, "prod": 18}
    assert (await rig.rollout(rollout_id)).state == "awaiting_approval"
    assert all(rig.executor.apply_count(f"dev-{i:02d}") == 1 for i in range(4))
    async with read_only(db) as session:
        assert (await audit.verify(session)).count > 0


async def shares(db: Database, rollout_id: int) -> list[object]:
    async with read_only(db) as session:
        runs = sa.select(HostRun.packages).where(HostRun.rollout_id == rollout_id)
        return list(await session.scalars(runs))


async def test_the_pin_writes_shares_in_chunks_and_again_after_a_crash(db: Database) -> None:
    rig = Rig(db, hosts=fleet())
    rollout_id = await rig.start()
    pinning = 0

    def hook(step: str) -> None:
        nonlocal pinning
        if step == "rollout.pinning":
            pinning += 1
            if pinning == 2:
                raise Crash(step)

    with pytest.raises(BaseException) as crashed:
        await rig.engine(hook).run_until_idle()
    assert "Crash" in repr(crashed.value)
    written = await shares(db, rollout_id)
    assert sum(1 for p in written if p is not None) == 2 * CHUNK
    assert (await rig.rollout(rollout_id)).state == "assessing"  # not pinned yet

    steps: list[str] = []
    await rig.engine(steps.append).run_until_idle()
    pin_steps = [s for s in steps if s in ("rollout.pinning", "rollout.assessed")]
    assert pin_steps == ["rollout.pinning"] * 5 + ["rollout.assessed"]  # 30 in sevens
    written = await shares(db, rollout_id)
    assert len(written) == 30 and all(p == written[0] for p in written)
    assert written[0] == {"openssl": "3.0.13-1", "demo-app": "1.1"}
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "awaiting_approval" and rollout.patchset_hash
    assert all(rig.executor.apply_count(f"dev-{i:02d}") == 1 for i in range(4))

"""What a long rollout keeps in memory per host: the engine drops a host run from its
cache of committed runs once the host has settled, and serve's simulated hosts keep a
bounded record of calls."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app import build_executor
from bot.settings import Settings
from integrations.testing.executor import RecordingExecutor
from tests.enginekit import Rig, make_plan
from workflows.db import Database
from workflows.ports import InventoryHost


def no_gates() -> list[dict[str, object]]:
    return [
        {"name": "dev", "hosts": "group:dev", "batch": 1, "failure_budget": 0},
        {"name": "staging", "hosts": "group:staging", "batch": 2},
        {"name": "prod", "hosts": "group:prod", "batch": 3, "failure_budget": 1},
    ]


async def test_the_engine_keeps_no_settled_host_run_after_a_rollout(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start(make_plan(rings=no_gates()))
    engine = rig.engine()
    await engine.run_until_idle()
    assert (await rig.rollout(rollout_id)).state == "succeeded"
    assert set((await rig.host_states(rollout_id)).values()) == {"healthy"}
    assert engine.ctx.committed_runs == {}  # it held all ten healthy runs before


def test_serves_simulated_hosts_keep_a_bounded_record(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        executor="recording",
        recording_state_file=tmp_path / "fleet.json",
    )
    executor, health = build_executor(settings)
    assert isinstance(executor, RecordingExecutor)

    async def many() -> None:
        for i in range(1500):
            host = InventoryHost(name=f"h-{i}")
            await executor.apply(host, {"openssl": "3.0.13-1"}, op_id=f"op-{i}")
            await health.check(host, [])

    asyncio.run(many())
    assert len(executor.calls) == 1000 and executor.calls[-1] == ("h-1499", "health")
    assert len(getattr(health, "checked", [])) == 1000
    assert not executor.max_concurrent_per_host and not executor._active
    assert executor.apply_count("h-0") == 1  # the hosts themselves are all kept
    # A test's own executor keeps everything, as before.
    own = RecordingExecutor.demo()
    asyncio.run(own.facts(InventoryHost(name="a")))
    assert own.calls == [("a", "facts")]

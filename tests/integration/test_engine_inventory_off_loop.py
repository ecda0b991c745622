"""The engine reads the inventory in a thread: while a large inventory file is parsed for
a rollout's layout, serve's event loop (which acks Slack and answers /healthz) keeps
running.

Measured as event-loop lag, not wall time: a probe task sleeps 10 ms at a time and
records how late it wakes up. A parse on the loop shows up as one late wake-up as long as
the parse; in a thread the loop gets the GIL back every switch interval (5 ms)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bot.heap import freeze_startup_heap
from bot.metrics import Metrics
from bot.server import ServerDeps, build_web_app, start_server
from integrations.inventory import FileInventory
from tests.enginekit import Rig, make_hosts
from workflows.db import Database
from workflows.ports import InventoryHost

OTHER_HOSTS = 30_000  # about 1.3 s to parse on the test machine when quiet
PROBE = 0.01


class Leadership:
    is_leader = True
    epoch: int | None = 1
    refusal: str | None = None


class TimedInventory:
    """A real file inventory that records when each read ran and in which thread."""

    def __init__(self, inner: FileInventory) -> None:
        self.inner = inner
        self.reads: list[tuple[float, float, bool]] = []  # start, end, on the loop's thread

    def hosts(self) -> Sequence[InventoryHost]:
        started = time.monotonic()
        hosts = self.inner.hosts()
        on_main = threading.current_thread() is threading.main_thread()
        self.reads.append((started, time.monotonic(), on_main))
        return hosts


def write_inventory(path: Path) -> None:
    """The rig's ten hosts in their groups, and many more hosts no ring selects."""
    lines = ["all:", "  children:"]
    by_group: dict[str, list[str]] = {}
    for host in make_hosts():
        by_group.setdefault(next(iter(host.groups)), []).append(host.name)
    for group, names in by_group.items():
        lines += [f"    {group}:", "      hosts:"] + [f"        {name}:" for name in names]
    lines += ["    other:", "      hosts:"]
    lines += [
        f"        other-{i:06d}:\n          ansible_host: 10.9.{i // 256 % 256}.{i % 256}"
        for i in range(OTHER_HOSTS)
    ]
    path.write_text("\n".join(lines) + "\n")


async def probe_lag(stop: asyncio.Event, lags: list[tuple[float, float]]) -> None:
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(PROBE)
        lags.append((before, time.monotonic() - before - PROBE))


async def poll_healthz(url: str, stop: asyncio.Event, answers: list[tuple[float, int]]) -> None:
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            async with http.get(url) as response:
                answers.append((time.monotonic(), response.status))
            await asyncio.sleep(0.05)


async def test_a_large_inventory_is_parsed_for_the_engine_while_the_loop_keeps_answering(
    db: Database, tmp_path: Path
) -> None:
    source = tmp_path / "hosts.yml"
    write_inventory(source)
    rig = Rig(db)
    inventory = TimedInventory(FileInventory([source]))
    rig.inventory = inventory  # type: ignore[assignment]
    engine = rig.engine()
    await rig.start()
    app = build_web_app(ServerDeps(db=db, leadership=Leadership(), metrics=Metrics()))
    runner = await start_server(app, host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/healthz"
    stop = asyncio.Event()
    lags: list[tuple[float, float]] = []
    answers: list[tuple[float, int]] = []
    # As serve does before it serves (bot.heap): the heap built so far (here the whole
    # test session's, thousands of tests in) is frozen, or a full collection triggered
    # by the parse's allocations in its thread walks all of it while holding the GIL,
    # and the loop stalls for that, not for the parse (seen once in a whole-suite run).
    freeze_startup_heap()
    probe = asyncio.create_task(probe_lag(stop, lags))
    poller = asyncio.create_task(poll_healthz(url, stop, answers))
    try:
        await engine.tick()  # lays the rollout out: the first inventory read parses
    finally:
        stop.set()
        await asyncio.gather(probe, poller)
        await runner.cleanup()
        gc.unfreeze()

    assert inventory.reads, "the engine read no inventory"
    start, end, on_main = inventory.reads[0]
    assert not on_main, "the inventory was read on the event loop's thread"
    assert end - start > 0.5, f"the parse took {end - start:.2f}s: too small to show anything"
    during = [lag for at, lag in lags if start <= at <= end]
    assert len(during) >= 5, f"the loop woke {len(during)} times during a {end - start:.2f}s parse"
    assert max(during) < (end - start) / 3, (
        f"the loop stalled {max(during):.2f}s during a {end - start:.2f}s parse"
    )
    answered = [status for at, status in answers if start <= at <= end]
    assert answered and set(answered) == {200}, answers
    states = await rig.host_states(1)
    assert "dev-01" in states and not any(name.startswith("other-") for name in states)

"""A property of the outbox's ordering (issue 16): over random interleavings of rows of
several topics and rollouts, parents queued before or after their children (or never),
and deliveries that fail transiently, permanently or for good, every row ends delivered or
dead with a reason, no pending row ever waits on a row that cannot progress, the waits
never form a circle, and the parentless rows of one rollout and topic arrive in order."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.testing.deliverers import RecordingDeliverer
from tests.unit.test_outbox_helpers import T0, FakeClock
from workflows import outbox
from workflows.db import create_database, read_only, unit_of_work
from workflows.models import Base, OutboxItem

TOPICS = ("notify", "ticket")
MAX_ATTEMPTS = 3
GRACE = 120  # seconds a child waits for a parent that was never queued


@dataclass(frozen=True)
class Spec:
    key: str
    topic: str
    rollout: int | None
    parent: str | None  # another row's key, or a "ghost:" key never queued
    fate: str  # "ok", "flaky" (fails twice, then lands), "permanent", "hopeless"


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Spec], list[int | None]]:
    """Rows (parents drawn from rows made earlier, so no loops) and an interleaving: the
    order they are queued in, with worker passes (None) in between."""
    n = draw(st.integers(2, 9))
    specs: list[Spec] = []
    for i in range(n):
        parent = draw(
            st.one_of(
                st.none(),
                st.just(f"ghost:{i}"),
                st.sampled_from([s.key for s in specs]) if specs else st.none(),
            )
        )
        specs.append(
            Spec(
                key=f"row:{i}",
                topic=draw(st.sampled_from(TOPICS)),
                rollout=draw(st.sampled_from([None, 1, 2])),
                parent=parent,
                fate=draw(st.sampled_from(["ok", "ok", "flaky", "permanent", "hopeless"])),
            )
        )
    order = draw(st.permutations(range(n)))
    steps: list[int | None] = []
    for index in order:
        steps.extend([None] * draw(st.integers(0, 2)))
        steps.append(index)
    return specs, steps


async def _rows(db: object) -> dict[str, OutboxItem]:
    async with read_only(db) as session:  # type: ignore[arg-type]
        return {r.key: r for r in await session.scalars(sa.select(OutboxItem))}


def _check_waits(rows: dict[str, OutboxItem], now: dt.datetime) -> None:
    """No pending row waits on a dead row or on a parent missing past the grace, and the
    waits (on the parent; on earlier ready pending rows of the rollout and topic) have no
    circle."""
    pending = {k: r for k, r in rows.items() if r.state == "pending"}

    def ready(r: OutboxItem) -> bool:
        return r.parent_key is None or (
            r.parent_key in rows and rows[r.parent_key].state == "delivered"
        )

    waits: dict[str, list[str]] = {}
    for key, r in pending.items():
        on: list[str] = []
        if r.parent_key is not None:
            parent = rows.get(r.parent_key)
            if parent is None:
                due = r.next_attempt_at.replace(tzinfo=dt.UTC)
                assert now - due < dt.timedelta(seconds=GRACE), f"{key} waits past the grace"
            else:
                assert parent.state != "dead", f"{key} waits on dead {parent.key}"
                if parent.state == "pending":
                    on.append(parent.key)
        if r.rollout_id is not None:
            on += [
                e.key
                for e in pending.values()
                if e.rollout_id == r.rollout_id and e.topic == r.topic and e.id < r.id and ready(e)
            ]
        waits[key] = on
    state: dict[str, int] = {}

    def visit(key: str, path: list[str]) -> None:
        if state.get(key) == 2:
            return
        assert state.get(key) != 1, f"rows wait in a circle: {[*path, key]}"
        state[key] = 1
        for nxt in waits.get(key, []):
            visit(nxt, [*path, key])
        state[key] = 2

    for key in waits:
        visit(key, [])


async def _run(url: str, specs: list[Spec], steps: list[int | None]) -> None:
    db = create_database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            for table in reversed(Base.metadata.sorted_tables):
                await conn.execute(table.delete())
        rec, clock = RecordingDeliverer(), FakeClock(T0)
        for spec in specs:
            if spec.fate == "flaky":
                rec.fail_transiently(key=spec.key, times=2)
            elif spec.fate == "hopeless":
                rec.fail_transiently(key=spec.key, times=100)
            elif spec.fate == "permanent":
                rec.fail_permanently(key=spec.key)
        deliverers = dict.fromkeys(TOPICS, rec)
        worker = outbox.OutboxWorker(
            db, deliverers, clock=clock, owner="w", max_attempts=MAX_ATTEMPTS,  # type: ignore[arg-type]
            base_backoff=1, max_backoff=4, orphan_grace_seconds=GRACE,
        )  # fmt: skip

        async def one_pass(seconds: float = 5) -> bool:
            """A worker pass, the checks, then time moves on; True if rows are pending."""
            await worker.run_once()
            rows = await _rows(db)
            _check_waits(rows, clock.now)
            clock.advance(seconds)
            return any(r.state == "pending" for r in rows.values())

        for step in steps:
            if step is None:
                await one_pass()
                continue
            spec = specs[step]
            async with unit_of_work(db) as session:
                await outbox.enqueue(
                    session, key=spec.key, topic=spec.topic, payload={}, at=clock.now,
                    rollout_id=spec.rollout, parent_key=spec.parent,
                )  # fmt: skip
        for _ in range(2 * len(specs) + MAX_ATTEMPTS + GRACE // 20 + 2):
            if not await one_pass(20):
                break

        rows = await _rows(db)
        for spec in specs:
            r = rows[spec.key]
            assert r.state in ("delivered", "dead"), (spec, r.state)
            if r.state == "dead":
                assert r.last_error, spec
            ancestors_fine, up = True, spec.parent
            while up is not None:
                parent = rows.get(up)
                if parent is None or parent.state != "delivered":
                    ancestors_fine = False
                    break
                up = parent.parent_key
            if spec.fate in ("ok", "flaky") and ancestors_fine:
                assert r.state == "delivered", (spec, r.last_error)
            if spec.fate in ("permanent", "hopeless") or not ancestors_fine:
                assert r.state == "dead", spec
        order = {key: n for n, key in enumerate(rec.keys)}
        for a in specs:
            for b in specs:
                same_scope = a.rollout is not None and (a.rollout, a.topic) == (b.rollout, b.topic)
                both = a.key in order and b.key in order and a.parent is b.parent is None
                if same_scope and both and rows[a.key].id < rows[b.key].id:
                    assert order[a.key] < order[b.key], (a, b, rec.keys)
    finally:
        await db.dispose()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_every_row_ends_delivered_or_dead_with_a_reason_and_nothing_waits_in_a_circle(
    database_url: str, scenario: tuple[list[Spec], list[int | None]]
) -> None:
    specs, steps = scenario
    asyncio.run(_run(database_url, specs, steps))

"""Crash at every step, for real: ``patchgate serve`` SIGKILLs itself right after a named
persisted step of a three-ring rollout (PATCHGATE_TEST_KILL_AT), a new ``serve`` without
the setting finishes it, and the end state is checked (tests/e2e/crash.py: every host
patched exactly once, none skipped, every gate decided once, every Slack message and
Jira ticket delivered once, the audit chain verifies).

The kill points are the steps a run without a kill persists (recorded through
PATCHGATE_TEST_STEP_LOG); the first test fails when an undisturbed run persists others:
- engine: ROLLOUT_STEPS (the rollout's list, STEP:N for the N-th of a name), and the
  per-tick HOUSEKEEPING steps at their 1st and 10th occurrence: 71;
- outbox worker: after the N-th claim and after the N-th delivery returned (before its
  result is recorded), for each of the OUTBOX_ROWS rows: 64.
Both are shared out between the backends in the default run (every point on one of
them, alternating: 68 and 67 runs); ``-m slow`` runs each on the other backend too.

One test per backend runs its points several at once (crash.run_matrix: each run on its
own database copy, emulators, directory and ports; ``serve`` forked from a fork server
that imported PatchGate once) and fails naming every kill point whose run failed, with
the logs of the first ones. ``pytest -rP tests/e2e/test_crash_process.py`` prints each
backend's summary line (points passed, runs at once, the slowest run).

``pytest -m slow tests/e2e/test_crash_process.py`` adds the other half of the kill
points on each backend, and every kill point as a test of its own with ``serve`` started
as ``python -m bot.cli.main serve`` (no fork server): for reproducing one point (by node
id: ``…::test_one_kill_point_with_serve_started_as_its_command[outbox.returned:3-sqlite]``)
or checking that the fork server hides nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbutil import BACKENDS
from tests.e2e.crash import (
    MATRIX_TICK,
    CrashRun,
    Templates,
    concurrency,
    kill_points,
    run_matrix,
)

_BATCH = [
    "batch.leased",
    *("host.apply.intent", "host.apply.returned", "host.apply.result"),
    *("host.health.returned", "host.health.result"),
]
_RING_END = ["ring.verifying", "ring.done"]
# The rollout's steps in one undisturbed run of the crash plan, in order (the two hosts
# of prod's batch run concurrently, so their steps interleave in any order there).
ROLLOUT_STEPS: list[str] = [
    *("rollout.assessing", "rollout.facts", "rollout.refreshed", "rollout.assessed"),
    "ring.started",  # dev: two batches of one
    *_BATCH,
    "batch.done",
    *_BATCH,
    "batch.done",
    *_RING_END,
    *("gate.opened", "gate.passed", "ring.started"),  # staging: two batches of one
    *_BATCH,
    "batch.done",
    *_BATCH,
    *("host.rollback.intent", "host.rollback.returned", "host.rollback.result"),
    "batch.done",
    *_RING_END,
    *("gate.opened", "gate.passed", "ring.started"),  # prod: one batch of two
    *_BATCH,
    *_BATCH[1:],
    "batch.done",
    *_RING_END,
    "rollout.succeeded",
]
# Steps of every engine tick, whatever the rollouts do (their number depends on timing):
# each is killed at its first occurrence and at its tenth (in the middle of the rollout).
HOUSEKEEPING: tuple[str, ...] = (
    *("schedule.reload", "schedule.freeze", "schedule.reminders", "schedule.due"),
    "gates.expired",
)


# The outbox worker's steps: after a claim committed, after a delivery returned and
# before its result is recorded (bot/cli/serve.py passes the hook to the OutboxWorker).
# An undisturbed run delivers OUTBOX_ROWS rows (Slack messages, updates and thread
# replies, a Jira ticket and its comment), one claim and one return each. Which row is
# the N-th can vary by one or two around the ticket's rows (they belong to no rollout,
# so they are claimed beside the rollout's next message); the N-th claim or return is
# reached in every run.
OUTBOX: tuple[str, ...] = ("outbox.claimed", "outbox.returned")
OUTBOX_ROWS = 32


def _engine_points() -> list[str]:
    """Each rollout step (STEP:N, the N-th of that name), and each housekeeping step at
    its 1st and 10th occurrence."""
    return kill_points(ROLLOUT_STEPS) + [f"{s}:{n}" for s in HOUSEKEEPING for n in (1, 10)]


def _outbox_points() -> list[str]:
    """Each outbox step at every row: after the N-th claim, after the N-th return."""
    return [f"{s}:{n}" for n in range(1, OUTBOX_ROWS + 1) for s in OUTBOX]


def _points(backend: str) -> list[str]:
    """The default run's kill points on ``backend``: half the engine points and half
    the outbox points, alternating (SQLite: the even-numbered engine points, the odd
    returns and even claims; PostgreSQL: the others), so every point runs on one backend
    by default; -m slow runs the other half on each."""
    mine = BACKENDS.index(backend)
    engine = [p for i, p in enumerate(_engine_points()) if i % 2 == mine]
    shared = [
        f"{step}:{n}"
        for n in range(1, OUTBOX_ROWS + 1)
        for j, step in enumerate(OUTBOX)
        if (n + j) % 2 == mine
    ]
    return engine + shared


def _other_half(backend: str) -> list[str]:
    return [p for p in _engine_points() + _outbox_points() if p not in _points(backend)]


ENGINE_POINTS = len(_engine_points())  # in all, each on one backend by default
OUTBOX_POINTS = len(_outbox_points())  # in all, each on one backend by default
SHOWN = 3  # failing runs whose logs the assertion message carries


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    found = Templates(tmp_path_factory.mktemp("crash-templates"))
    yield found
    found.close()


async def _run(
    templates: Templates, backend: str, tmp_path: Path, kill_at: str | None, record: bool = False
) -> CrashRun:
    with templates.fresh(backend, tmp_path) as url:
        run = CrashRun(url, tmp_path, kill_at=kill_at, record_steps=record, tick=MATRIX_TICK)
        await run.run()
    return run


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_undisturbed_run_persists_exactly_the_listed_kill_points(
    templates: Templates, backend: str, tmp_path: Path
) -> None:
    run = await _run(templates, backend, tmp_path, None, record=True)
    assert run.outcome.kills == 0
    steps = Counter(run.outcome.steps)
    rollout_only = Counter(s for s in run.outcome.steps if s not in (*HOUSEKEEPING, *OUTBOX))
    assert rollout_only == Counter(ROLLOUT_STEPS), run.outcome.steps
    assert all(steps[s] >= 10 for s in HOUSEKEEPING), steps
    assert {s: steps[s] for s in OUTBOX} == dict.fromkeys(OUTBOX, OUTBOX_ROWS), steps


async def _matrix(templates: Templates, backend: str, points: list[str], root: Path) -> None:
    """Run ``points`` on ``backend`` several at once; fail naming every point that failed."""
    results = await run_matrix(templates, backend, points, root, at_once=concurrency())
    failed = [r for r in results if r.failure is not None]
    slowest = max(results, key=lambda r: r.seconds)
    outbox_points = sum(r.point.startswith("outbox.") for r in results)
    summary = (
        f"crash matrix on {backend}: {len(results) - len(failed)} of {len(results)} kill "
        f"points passed ({len(results) - outbox_points} engine, {outbox_points} outbox; "
        f"{concurrency()} runs at once; slowest run {slowest.seconds:.0f} s at {slowest.point})"
    )
    print(summary)
    assert len(results) == len(points)
    assert not failed, "\n".join(
        [
            summary,
            "failed: " + ", ".join(r.point for r in failed),
            *(f"=== {r.point}\n{r.failure}" for r in failed[:SHOWN]),
        ]
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_serve_killed_at_any_kill_point_is_finished_by_the_next_without_repeats(
    templates: Templates, backend: str, tmp_path: Path
) -> None:
    points = _points(backend)
    mine = BACKENDS.index(backend)
    assert len(points) == (ENGINE_POINTS + 1 - mine) // 2 + OUTBOX_POINTS // 2
    await _matrix(templates, backend, points, tmp_path)


def test_every_kill_point_runs_on_one_backend_by_default_and_on_both_with_slow() -> None:
    default = [p for b in BACKENDS for p in _points(b)]
    assert sorted(default) == sorted(_engine_points() + _outbox_points())
    for backend in BACKENDS:
        assert sorted(_points(backend) + _other_half(backend)) == sorted(
            _engine_points() + _outbox_points()
        )


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_other_half_of_the_kill_points_on_each_backend(
    templates: Templates, backend: str, tmp_path: Path
) -> None:
    await _matrix(templates, backend, _other_half(backend), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kill_at", _engine_points() + _outbox_points())
async def test_one_kill_point_with_serve_started_as_its_command(
    templates: Templates, backend: str, kill_at: str, tmp_path: Path
) -> None:
    run = await _run(templates, backend, tmp_path, kill_at)
    assert run.outcome.kills == 1, f"{kill_at} was never reached"

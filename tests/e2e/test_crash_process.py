"""Crash at every step, for real: ``patchgate serve`` SIGKILLs itself right after a named
persisted step of a three-ring rollout (PATCHGATE_TEST_KILL_AT), a new ``serve`` without
the setting finishes it, and the end state is checked (tests/e2e/crash.py: every host
patched exactly once, none skipped, every gate decided once, every Slack message and
Jira ticket delivered once, the audit chain verifies).

The kill points are the steps a run without a kill persists (recorded through
PATCHGATE_TEST_STEP_LOG): ROLLOUT_STEPS below is the rollout's list, and the first test
fails when the engine's steps change without it; the per-tick HOUSEKEEPING steps are
killed at their 1st and 10th occurrence. 70 kill points per backend. The default run
covers a deterministic sample (SAMPLE: 12 points, SQLite and PostgreSQL alternately);
the whole matrix, 140 runs, is ``pytest -m slow tests/e2e/test_crash_process.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbutil import BACKENDS
from tests.e2e.crash import CrashRun, Templates, kill_points

_BATCH = [
    "batch.leased",
    *("host.apply.intent", "host.apply.returned", "host.apply.result"),
    *("host.health.returned", "host.health.result"),
]
_RING_END = ["ring.verifying", "ring.done"]
# The rollout's steps in one undisturbed run of the crash plan, in order (the two hosts
# of prod's batch run concurrently, so their steps interleave in any order there).
ROLLOUT_STEPS: list[str] = [
    *("rollout.assessing", "rollout.facts", "rollout.assessed"),
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


def _points() -> list[str]:
    """Every kill point: each rollout step (STEP:N, the N-th of that name), and each
    housekeeping step at its 1st and 10th occurrence."""
    return kill_points(ROLLOUT_STEPS) + [f"{s}:{n}" for s in HOUSEKEEPING for n in (1, 10)]


# The default run's sample: the first occurrence of the steps where recovery differs
# (mid-assessment, each side of a host command, a batch's edges, a gate's, a rollback's).
SAMPLE = (
    *("rollout.facts", "rollout.assessed", "batch.leased", "host.apply.intent"),
    *("host.apply.returned", "host.apply.result", "host.health.returned", "batch.done"),
    *("gate.opened", "gate.passed", "host.rollback.intent", "host.rollback.returned"),
)


def _sample() -> list[tuple[str, str]]:
    """The default run: each SAMPLE step killed once at its first occurrence, on SQLite
    and PostgreSQL alternately (deterministic; the full matrix is marked slow)."""
    return [(BACKENDS[i % 2], f"{step}:1") for i, step in enumerate(SAMPLE)]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    found = Templates(tmp_path_factory.mktemp("crash-templates"))
    yield found
    found.close()


async def _run(
    templates: Templates, backend: str, tmp_path: Path, kill_at: str | None, record: bool = False
) -> CrashRun:
    with templates.fresh(backend, tmp_path) as url:
        run = CrashRun(url, tmp_path, kill_at=kill_at, record_steps=record)
        await run.run()
    return run


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_undisturbed_run_persists_exactly_the_listed_kill_points(
    templates: Templates, backend: str, tmp_path: Path
) -> None:
    run = await _run(templates, backend, tmp_path, None, record=True)
    assert run.outcome.kills == 0
    steps = Counter(run.outcome.steps)
    rollout_only = Counter(s for s in run.outcome.steps if s not in HOUSEKEEPING)
    assert rollout_only == Counter(ROLLOUT_STEPS), run.outcome.steps
    assert all(steps[s] >= 10 for s in HOUSEKEEPING), steps


@pytest.mark.parametrize(("backend", "kill_at"), _sample())
async def test_a_serve_killed_at_a_step_is_finished_by_the_next_without_repeats(
    templates: Templates, backend: str, kill_at: str, tmp_path: Path
) -> None:
    run = await _run(templates, backend, tmp_path, kill_at)
    assert run.outcome.kills == 1, f"{kill_at} was never reached"


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kill_at", _points())
async def test_the_full_matrix_every_kill_point_on_both_backends(
    templates: Templates, backend: str, kill_at: str, tmp_path: Path
) -> None:
    run = await _run(templates, backend, tmp_path, kill_at)
    assert run.outcome.kills == 1, f"{kill_at} was never reached"

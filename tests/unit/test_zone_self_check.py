"""A zone worker's look at itself (integrations/zones/worker.py: SelfCheck, answers):
a consumer that came back from a broker outage connected but deaf is restarted after a
few unanswered looks; a broker that is down, or one slow answer, restarts nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from integrations.zones.celeryapp import STATUS_COMMAND
from integrations.zones.worker import SelfCheck, answers


class Looks:
    def __init__(self, *results: bool | None) -> None:
        self.results: Iterator[bool | None] = iter(results)

    def __call__(self) -> bool | None:
        return next(self.results)


def checked(*results: bool | None, misses: int = 3) -> tuple[SelfCheck, list[str]]:
    restarts: list[str] = []
    return SelfCheck(Looks(*results), restarts.append, interval=5, misses=misses), restarts


def test_three_unanswered_looks_in_a_row_restart_the_worker_once() -> None:
    check, restarts = checked(False, False, False)
    assert [check.step() for _ in range(3)] == [False, False, True]
    assert len(restarts) == 1 and "3 looks, 5s apart" in restarts[0]


def test_an_answer_between_misses_starts_the_count_again() -> None:
    check, restarts = checked(False, False, True, False, False, True)
    assert not any(check.step() for _ in range(6))
    assert restarts == []


def test_a_broker_that_is_down_is_the_consumers_to_reconnect_to_not_a_miss() -> None:
    check, restarts = checked(False, False, None, False, False, None, None, None)
    assert not any(check.step() for _ in range(8))
    assert restarts == []


def test_the_thread_waits_until_the_worker_is_ready_and_stops_when_told() -> None:
    looked = threading.Event()

    def look() -> bool:
        looked.set()
        return True

    check = SelfCheck(look, lambda why: None, interval=0.01)
    thread = check.start()
    assert not looked.wait(0.2), "looked before the worker was ready"
    check.armed.set()
    assert looked.wait(5)
    check.stopped.set()
    thread.join(5)
    assert not thread.is_alive()


def test_the_thread_ends_after_asking_for_a_restart() -> None:
    restarted = threading.Event()
    check = SelfCheck(lambda: False, lambda why: restarted.set(), interval=0.01, misses=2)
    check.armed.set()
    thread = check.start()
    assert restarted.wait(5)
    thread.join(5)
    assert not thread.is_alive()


class Control:
    def __init__(self, replies: Any = None, error: Exception | None = None) -> None:
        self.replies, self.error = replies, error
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def broadcast(self, command: str, **kwargs: Any) -> Any:
        self.asked.append((command, kwargs))
        if self.error is not None:
            raise self.error
        return self.replies


class App:
    def __init__(self, control: Control) -> None:
        self.control = control


NAME = "dmz.42@host"


@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        ([{NAME: {"zone": "dmz", "active": [], "slots": 2}}], True),
        ([{"dmz.7@other": {"zone": "dmz"}}], False),
        ([], False),
        (None, False),
    ],
)
def test_answers_asks_only_this_worker_and_reads_its_reply(replies: Any, expected: bool) -> None:
    control = Control(replies)
    assert answers(App(control), NAME, timeout=1.5) is expected  # type: ignore[arg-type]
    assert control.asked == [
        (STATUS_COMMAND, {"reply": True, "timeout": 1.5, "destination": [NAME]})
    ]


def test_answers_is_none_when_the_broker_cannot_be_reached() -> None:
    control = Control(error=ConnectionRefusedError(111, "Connection refused"))
    assert answers(App(control), NAME, timeout=1) is None  # type: ignore[arg-type]


def test_a_worker_shutting_down_is_not_restarted_when_its_consumer_stops_answering() -> None:
    check, restarts = checked(False, False, False)
    check.stopped.set()
    assert [check.step() for _ in range(3)] == [False, False, True]
    assert restarts == []

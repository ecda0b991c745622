"""Property tests of the pure state machines over random event sequences."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.errors import IllegalTransition
from workflows.states import (
    GATE_TERMINAL,
    GATE_TRANSITIONS,
    HOST_TERMINAL,
    HOST_TRANSITIONS,
    RING_TERMINAL,
    RING_TRANSITIONS,
    ROLLOUT_TERMINAL,
    ROLLOUT_TRANSITIONS,
    GateEvent,
    GateState,
    HostEvent,
    HostState,
    RingEvent,
    RingState,
    RolloutEvent,
    RolloutState,
    gate_transition,
    host_transition,
    ring_transition,
    rollout_transition,
)

MACHINES: list[
    tuple[
        str,
        type[StrEnum],
        type[StrEnum],
        Mapping[Any, Mapping[Any, Any]],
        frozenset[Any],
        Callable[[Any, Any], Any],
        Any,
    ]
] = [
    (
        "rollout",
        RolloutState,
        RolloutEvent,
        ROLLOUT_TRANSITIONS,
        ROLLOUT_TERMINAL,
        rollout_transition,
        RolloutState.SCHEDULED,
    ),
    (
        "ring",
        RingState,
        RingEvent,
        RING_TRANSITIONS,
        RING_TERMINAL,
        ring_transition,
        RingState.PENDING,
    ),
    (
        "gate",
        GateState,
        GateEvent,
        GATE_TRANSITIONS,
        GATE_TERMINAL,
        gate_transition,
        GateState.OPEN,
    ),
    (
        "host",
        HostState,
        HostEvent,
        HOST_TRANSITIONS,
        HOST_TERMINAL,
        host_transition,
        HostState.PENDING,
    ),
]


@pytest.mark.parametrize("machine", MACHINES, ids=[m[0] for m in MACHINES])
@given(data=st.data())
def test_random_event_sequences_only_ever_take_listed_transitions(machine: Any, data: Any) -> None:
    _, states, events, table, _terminal, transition, start = machine
    state = start
    for event in data.draw(st.lists(st.sampled_from(list(events)), max_size=40)):
        allowed = table.get(state, {})
        if event in allowed:
            new = transition(state, event)
            assert new == allowed[event]
            state = new
        else:
            with pytest.raises(IllegalTransition):
                transition(state, event)
        assert state in set(states)


@pytest.mark.parametrize("machine", MACHINES, ids=[m[0] for m in MACHINES])
def test_terminal_states_accept_no_event(machine: Any) -> None:
    _, _, events, table, terminal, transition, _ = machine
    for state in terminal:
        assert state not in table or not table[state]
        for event in events:
            with pytest.raises(IllegalTransition):
                transition(state, event)


@pytest.mark.parametrize("machine", MACHINES, ids=[m[0] for m in MACHINES])
def test_every_state_can_still_reach_a_terminal_state(machine: Any) -> None:
    _, states, _, table, terminal, _, _ = machine
    for state in states:
        seen, frontier = {state}, [state]
        while frontier:
            current = frontier.pop()
            for nxt in table.get(current, {}).values():
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        # ring "failed" without rollback, and host failure states, are settled ends
        assert seen & set(terminal) or not table.get(state), state


@given(st.lists(st.tuples(st.integers(0, 19), st.sampled_from(list(HostEvent))), max_size=200))
def test_host_counts_per_state_always_add_up(moves: list[tuple[int, HostEvent]]) -> None:
    hosts = [HostState.PENDING] * 20
    paths: list[list[HostState]] = [[HostState.PENDING] for _ in range(20)]
    for index, event in moves:
        try:
            hosts[index] = host_transition(hosts[index], event)
        except IllegalTransition:
            continue
        paths[index].append(hosts[index])
    counts = Counter(hosts)
    assert sum(counts.values()) == 20
    assert set(counts) <= set(HostState)
    for state, path in zip(hosts, paths, strict=True):
        if state in (HostState.ROLLED_BACK, HostState.ROLLBACK_FAILED):
            assert HostState.ROLLING_BACK in path
        if state in (HostState.EXCEPTED, HostState.SKIPPED):
            assert path == [HostState.PENDING, state]  # never worked on
        if state == HostState.HEALTHY:
            assert HostState.APPLIED in path


def test_illegal_move_names_machine_state_and_event() -> None:
    with pytest.raises(
        IllegalTransition, match="host: event 'apply' is not allowed in state 'healthy'"
    ):
        host_transition(HostState.HEALTHY, HostEvent.APPLY)

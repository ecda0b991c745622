"""Issue 16 in the Slack messages: a rollout that succeeded with failures has its own
icon on the parent message; a ring's results line counts hosts already up to date."""

from __future__ import annotations

from integrations.slack import messages
from workflows.notify import ParentUpdated, RingResults


def test_the_parent_of_a_rollout_that_succeeded_with_failures_says_so_with_a_warning() -> None:
    event = ParentUpdated(
        rollout_id=1,
        state="succeeded_with_failures",
        text="Rollout #1 of plan weekly",
        reason="1 host(s) failed within the failure budget: dev-02",
    )
    rendered = messages.parent(event)
    assert rendered["text"].startswith(":warning: *succeeded_with_failures*")
    assert "failed within the failure budget: dev-02" in str(rendered["blocks"])


def test_a_rings_results_count_the_hosts_already_up_to_date() -> None:
    line = messages._results_line(RingResults(ring="dev", counts={"healthy": 3, "up_to_date": 2}))
    assert line == "*Ring dev*: 3 ok, 0 failed, 0 rolled back, 2 already up to date"

"""The domain's English sentences: every text a rollout's notes, alerts, readiness
messages and stored reasons are built from.

Kept together so the wording of a rollout's story can be read (and changed) in one
place: the engine's steps decide *when* to say something, the notification builders
*what* is sent, these functions *how* it reads. The Slack face's own wording (Block Kit,
ephemeral replies) is in ``integrations/slack/messages.py`` and ``bot/slack/texts.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from workflows.models import HostRun, Ring, Rollout
from workflows.plans import GateSpec
from workflows.states import HostState


def mrkdwn(text: object) -> str:
    """Text a person typed (a reason, a name), made inert in Slack mrkdwn by Slack's own
    rule: ``&``, ``<`` and ``>`` as ``&amp;``, ``&lt;`` and ``&gt;``. ``<!channel>`` then
    notifies nobody and ``<https://evil|a disguised link>`` shows as typed. Stored text
    stays as typed; this is applied where it is put into a message."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def gate_title(ring: str, host_count: int) -> str:
    """The heading of a decided readiness message."""
    return f"Gate for ring {ring} ({host_count} hosts)"


def approval_needed(ring: str, host_count: int, quorum: int) -> str:
    """A readiness message rebuilt from the database (``/patch approve`` without a gate id)."""
    return f"Approval needed before ring {ring} ({host_count} hosts), quorum {quorum}"


def unknown_note(kind: str) -> str:
    return f"unknown notification kind {kind!r}: not a thread note PatchGate knows"


BATCH_LINES = 20  # host lines shown under a batch summary
ALERT_HOSTS = 20  # failed hosts named in a rollback alert


def fmt_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no hosts"


def emergency_label(rollout: Rollout) -> str:
    """``EMERGENCY CVE-2024-3094: `` before an emergency rollout's messages; else nothing."""
    if not rollout.emergency:
        return ""
    return f"EMERGENCY {rollout.emergency_cve}: " if rollout.emergency_cve else "EMERGENCY: "


def parent_text(rollout: Rollout) -> str:
    """The rollout's parent message, as updated on each state change."""
    return (
        f"{emergency_label(rollout)}Rollout #{rollout.id} of plan {rollout.plan_name} "
        f"(requested by <@{rollout.requested_by}>)"
    )


def assessing_text(rollout: Rollout, plan_name: str, hosts: int, rings: int) -> str:
    """The parent message as first posted (the window's suffix is added by the caller)."""
    return (
        f"{emergency_label(rollout)}Rollout #{rollout.id} of plan {plan_name}: assessing "
        f"{hosts} hosts in {rings} rings (requested by <@{rollout.requested_by}>)"
    )


def paused_text(who: str) -> str:
    return f"Paused by <@{who}>: no new batch starts until resumed"


def paused_reason(who: str) -> str:
    return f"paused by {who}"


def resumed_text(who: str) -> str:
    return f"Resumed by <@{who}>"


def abort_requested_text(who: str) -> str:
    return f"Abort requested by <@{who}>: stopping at the next batch boundary"


REQUEST_NOT_ACTIVE = "rollout is no longer active"
HOST_NOT_IN_INVENTORY = "host is no longer in the inventory"


def assessment_failed_text(failure: str) -> str:
    return f"Assessment failed: {failure}"


def assessed_fixes_gone(platform: str, specs: Sequence[str], host: str, error: object) -> str:
    """Why pinning stops when an assessed version can no longer be installed."""
    return (
        f"{platform}: the assessed fixes ({', '.join(specs)}) cannot be "
        f"installed on {host}: {error}. Run `patchgate assess "
        "--refresh` and start the plan again"
    )


def pinned_text(patchset_hash: str, described: str, baselines: Mapping[str, Any]) -> str:
    return f"Patch set {patchset_hash[:12]} pinned:\n{described}" + baseline_lines(baselines)


def baseline_lines(baselines: Mapping[str, Mapping[str, Any]]) -> str:
    """How each platform's set was chosen, for the pinned note (one line per platform)."""
    lines = []
    for platform, how in sorted(baselines.items()):
        text = (
            f"{platform}: baseline over the fresh assessments of {how['hosts']} host(s) "
            f"selected {len(how['selected'])}, left out {len(how['left_out'])}"
        )
        if how.get("coverage_gaps"):
            gaps = how["coverage_gaps"]
            text += f"; not refreshed (older assessment used): {', '.join(list(gaps)[:5])}"
            text += f" (+{len(gaps) - 5})" if len(gaps) > 5 else ""
        lines.append(text)
    return "".join(f"\n{line}" for line in lines)


def no_fresh_assessment(hosts: Sequence[str], gaps: Mapping[str, str]) -> str:
    """Why a patch set is not pinned: hosts without a fresh assessment (and why)."""
    shown = [f"{h} ({gaps[h]})" if h in gaps else h for h in hosts[:10]]
    more = f" (+{len(hosts) - 10})" if len(hosts) > 10 else ""
    return (
        f"no fresh assessment for {len(hosts)} host(s): {', '.join(shown)}{more}; the patch "
        "set is pinned only from fresh assessments of every host it is for. Run "
        "`patchgate assess --refresh` and start the plan again"
    )


UP_TO_DATE_ERROR = "nothing of the pinned set left to install: no package command run"


def not_fully_patched(runs: Sequence[HostRun]) -> list[str]:
    """``host: pkg (why), …`` for settled hosts whose run left selected updates behind."""
    return [
        f"{r.host_name}: " + ", ".join(f"{p} ({why})" for p, why in sorted(r.left_over.items()))
        for r in runs
        if r.left_over and r.state in (HostState.HEALTHY, HostState.UP_TO_DATE)
    ]


def not_fully_patched_text(lines: Sequence[str]) -> str:
    if not lines:
        return ""
    text = f"\nNot fully patched ({len(lines)}): " + "; ".join(lines[:BATCH_LINES])
    return text + (f" and {len(lines) - BATCH_LINES} more" if len(lines) > BATCH_LINES else "")


def failures_within_budget(hosts: Sequence[str]) -> str:
    shown = ", ".join(hosts[:10]) + (f" (+{len(hosts) - 10})" if len(hosts) > 10 else "")
    return f"{len(hosts)} host(s) failed within the failure budget: {shown}"


def not_fully_patched_reason(count: int) -> str:
    return f"{count} host(s) not fully patched"


def gave_up_text(what: str, tries: int, error: BaseException) -> str:
    """Why the engine stopped retrying a step (a host's, or a rollout's)."""
    return (
        f"the engine gave up on {what} after {tries} failed tries: {type(error).__name__}: {error}"
    )


def ring_done_text(ring: Ring, counts: Mapping[str, int]) -> str:
    return f"Ring {ring.name} done: {fmt_counts(counts)}"


def ring_started_text(ring: Ring) -> str:
    return (
        f"Ring {ring.name} started: {ring.host_count} hosts in "
        f"{ring.batch_count} batches of up to {ring.batch_size}, failure "
        f"budget {ring.failure_budget}"
    )


def ring_inconsistent(ring: Ring) -> str:
    return f"ring {ring.name} is {ring.state}"


def gate_refused_why(ring: Ring, gate_state: str, reason: str | None) -> str:
    """Why a rollout stops at a rejected or expired gate."""
    return f"gate for ring {ring.name} {gate_state}" + (f": {reason}" if reason else "")


def stopped_text(rollout_id: int, why: str) -> str:
    return f"Rollout #{rollout_id} stopped: {mrkdwn(why)}"


def failed_text(rollout_id: int, why: str) -> str:
    return f"Rollout #{rollout_id} failed: {why}"


def gate_passed_text(ring: Ring) -> str:
    return f"Gate for ring {ring.name} approved; continuing"


def pins_unavailable_why(ring: Ring, unavailable: Sequence[str]) -> str:
    return (
        f"pinned versions no longer available ({', '.join(unavailable)}); "
        f"no host in ring {ring.name} was touched. Start the plan again to "
        "re-assess (the new patch set goes through the gates again)"
    )


def approval_gate_text(
    ring: Ring,
    spec: GateSpec,
    patchset_hash: str | None,
    expires_at: dt.datetime,
    untested: Sequence[str],
) -> str:
    approvers = spec.approvers
    who = ", ".join(
        [f"<@{u}>" for u in (approvers.users if approvers else [])]
        + [f"<!subteam^{g}>" for g in (approvers.groups if approvers else [])]
    )
    text = (
        f"Approval needed before ring {ring.name} ({ring.host_count} hosts): "
        f"{spec.quorum} of {who}. Patch set {(patchset_hash or '')[:12]}. "
        f"Expires {expires_at:%Y-%m-%d %H:%M} UTC."
    )
    if untested:
        text += f" Not tested in an earlier ring: {', '.join(untested)}."
    return text


def auto_gate_text(ring: Ring, soak_until: dt.datetime) -> str:
    return (
        f"Ring {ring.name} starts automatically after soaking until {soak_until:%Y-%m-%d %H:%M} UTC"
    )


def batch_summary(
    ring: Ring, number: int, batch_runs: Sequence[HostRun], failures: int, budget: int
) -> str:
    lines = [
        f"{r.host_name}: {r.state}" + (f" ({r.error})" if r.error else "")
        for r in batch_runs
        if r.failure or r.state not in (HostState.HEALTHY, HostState.UP_TO_DATE)
    ]
    lines += [f"{line}: not fully patched" for line in not_fully_patched(batch_runs)]
    current = sum(r.state == HostState.UP_TO_DATE for r in batch_runs)
    summary = (
        f"Ring {ring.name} batch {number + 1}/{ring.batch_count}: "
        f"{sum(r.state == HostState.HEALTHY for r in batch_runs)} of "
        f"{len(batch_runs)} healthy"
        + (f", {current} already up to date" if current else "")
        + f"; failures in ring {failures}/budget {budget}"
    )
    if lines:
        summary += "\n" + "\n".join(lines[:BATCH_LINES])
        if len(lines) > BATCH_LINES:
            summary += f"\n… and {len(lines) - BATCH_LINES} more"
    return summary


def budget_exceeded_why(ring: Ring, failures: int, budget: int) -> str:
    return f"failure budget exceeded in ring {ring.name}: {failures} failed, budget {budget}"


def rollback_alert_text(rollout: Rollout, ring: Ring, why: str, failed: Sequence[str]) -> str:
    return (
        f"Rollout #{rollout.id} of plan {rollout.plan_name}: {why}; rolling "
        f"back ring {ring.name}. Failed: {', '.join(failed[:ALERT_HOSTS])}"
        + (f" and {len(failed) - ALERT_HOSTS} more" if len(failed) > ALERT_HOSTS else "")
    )


def left_broken_alert_text(
    rollout: Rollout,
    ring: Ring,
    batch: int,
    backend: str,
    failed: Sequence[tuple[str, str]],
    jobs: Sequence[tuple[str, str]],
) -> str:
    """On-call: hosts a tool that cannot roll back left failed (``failed``: host, why;
    ``jobs``: the tool's job id, PatchGate's key)."""
    named = "; ".join(f"{h} ({why[:160]})" for h, why in failed[:ALERT_HOSTS])
    more = f" and {len(failed) - ALERT_HOSTS} more" if len(failed) > ALERT_HOSTS else ""
    job = ", ".join(f"{backend} job {i} ({k})" for i, k in jobs) or f"no {backend} job"
    return (
        f"Rollout #{rollout.id} of plan {rollout.plan_name}, ring {ring.name}, batch "
        f"{batch + 1}: {len(failed)} host(s) failed on {backend}, which cannot roll back, "
        f"so they are left as the tool left them and need a human: {named}{more}. {job}."
    )


def lease_waiting_text(busy: Mapping[str, int]) -> str:
    return "Waiting: " + ", ".join(
        f"{n} is being patched by rollout #{r}" for n, r in sorted(busy.items())
    )


def lease_skipped_error(rollout_id: int) -> str:
    return f"skipped: host is being patched by rollout #{rollout_id}"


def ring_rolled_back_why(ring: Ring) -> str:
    return f"ring {ring.name} rolled back"


def abort_why(rollout: Rollout) -> str:
    return f"aborted by {rollout.abort_requested_by}" + (
        f": {rollout.abort_reason}" if rollout.abort_reason else ""
    )


def aborted_text(rollout_id: int, why: str) -> str:
    return f"Rollout #{rollout_id} {mrkdwn(why)}"


def stopped_host_error(reason: str) -> str:
    return "rollout stopped: " + reason


def summary_text(rollout: Rollout, outcome: str, counts: Mapping[str, int]) -> str:
    """The closing note of a rollout that succeeded or was rolled back."""
    text = f"Rollout #{rollout.id} of plan {rollout.plan_name} {outcome}: {fmt_counts(counts)}"
    if rollout.reason:
        text += f". {mrkdwn(rollout.reason)}"
    return text


def checks_refused_why(problems: list[str]) -> str:
    """Why a rollout stops before touching any host: health checks its hosts' OS family
    cannot run (a systemd check on a Windows device; issue 21)."""
    return "health checks refused before any host was touched: " + "; ".join(problems[:5])


def backends_refused_why(problems: list[str]) -> str:
    """Why a rollout stops before touching any host: its hosts' backends (issue 19)."""
    shown = problems[:5]
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return "backends refused before any host was touched: " + "; ".join(shown) + more

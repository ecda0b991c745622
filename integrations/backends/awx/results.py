"""Per-host results from a finished AWX job: job host summaries and job events (pure).

The job template's playbook reports versions through ``set_fact`` tasks whose names
contain ``patchgate`` (the extra vars contract, docs/awx.md):

    patchgate_before: {package: version or null}   # before the change
    patchgate_after: {package: version or null}    # after it
    patchgate_reboot_required: true|false
    # assess playbooks:
    patchgate_upgradable: [{name, current, candidate, security, source}]
    patchgate_advisories: [{id, packages: {pkg: version}, cves, severity}]

AWX keeps a ``set_fact`` result in the ``runner_on_ok`` event's ``event_data.res.
ansible_facts``; a failure's task and message come from ``runner_on_failed`` events
(not those with ``ignore_errors``), unreachability from ``runner_on_unreachable`` and the
summary's ``dark`` count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from workflows.backends import HostAssessment, HostOutcome, HostStatus
from workflows.ports import HostAdvisory, UpgradablePackage

FINAL_STATES = frozenset({"successful", "failed", "error", "canceled"})
REPORT_TASK_MARK = "patchgate"
OUTPUT_LIMIT = 4000


def _versions(value: Any) -> dict[str, str | None]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): None if v is None else str(v) for k, v in value.items()}


def _message(res: Mapping[str, Any]) -> str:
    parts = []
    for key in ("msg", "stderr", "stdout"):
        value = res.get(key)
        if value and isinstance(value, str | int | float):
            parts.append(str(value).strip())
    return "\n".join(p for p in parts if p)[:OUTPUT_LIMIT]


class HostEvents:
    """What the events of one host say."""

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}
        self.failed_task: str | None = None
        self.failed_output = ""
        self.exit_code: int | None = None
        self.unreachable_output = ""


def collect_events(events: Iterable[Mapping[str, Any]]) -> dict[str, HostEvents]:
    """Fold job events (in ``counter`` order) into what each host's events say."""
    hosts: dict[str, HostEvents] = {}
    for event in events:
        data = event.get("event_data") or {}
        host = event.get("host_name") or data.get("host")
        if not host:
            continue
        seen = hosts.setdefault(str(host), HostEvents())
        res = data.get("res") if isinstance(data.get("res"), Mapping) else {}
        assert isinstance(res, Mapping)
        kind = event.get("event")
        if kind == "runner_on_ok":
            facts = res.get("ansible_facts")
            if isinstance(facts, Mapping):
                seen.facts.update({k: v for k, v in facts.items() if k.startswith("patchgate_")})
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            if seen.failed_task is None:  # the first failure is the cause
                seen.failed_task = str(event.get("task") or data.get("task") or "") or None
                seen.failed_output = _message(res)
                rc = res.get("rc")
                seen.exit_code = rc if isinstance(rc, int) and not isinstance(rc, bool) else None
        elif kind == "runner_on_unreachable":
            seen.unreachable_output = _message(res) or "unreachable"
    return hosts


def host_outcomes(
    hosts: Sequence[str],
    summaries: Iterable[Mapping[str, Any]],
    events: Mapping[str, HostEvents],
    *,
    job_status: str,
    job_detail: str,
) -> dict[str, HostOutcome]:
    """One outcome per host of the batch; a host AWX says nothing about is never applied."""
    by_host = {str(s.get("host_name")): s for s in summaries}
    out: dict[str, HostOutcome] = {}
    for host in hosts:
        seen = events.get(host, HostEvents())
        before = _versions(seen.facts.get("patchgate_before"))
        after = _versions(seen.facts.get("patchgate_after"))
        reboot = bool(seen.facts.get("patchgate_reboot_required", False))
        summary = by_host.get(host)
        status: HostStatus
        output = ""
        if summary is None:
            status = "failed"
            why = (
                "the job ran but AWX has no result for this host (is it in the job "
                "template's inventory?)"
                if job_status == "successful"
                else f"the job ended {job_status} before this host reported"
            )
            output = f"{why}{': ' + job_detail if job_detail else ''}"
        elif int(summary.get("dark") or 0) > 0:
            status, output = "unreachable", seen.unreachable_output or "unreachable"
        elif int(summary.get("failures") or 0) > 0 or summary.get("failed"):
            status = "failed"
            output = seen.failed_output or "AWX reports a failed task on this host"
        elif int(summary.get("ok") or 0) + int(summary.get("changed") or 0) > 0:
            status = "applied"
        else:
            status = "skipped"
        out[host] = HostOutcome(
            host=host,
            status=status,
            before=before,
            after=after,
            output=output,
            failed_task=seen.failed_task if status == "failed" else None,
            exit_code=seen.exit_code if status == "failed" else None,
            reboot_required=reboot,
        )
    return out


def _upgradable(value: Any) -> list[UpgradablePackage]:
    items = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, Mapping) and item.get("name") and item.get("candidate"):
            current = item.get("current")
            items.append(
                UpgradablePackage(
                    name=str(item["name"]),
                    current=None if current is None else str(current),
                    candidate=str(item["candidate"]),
                    security=bool(item.get("security", False)),
                    source=None if item.get("source") is None else str(item["source"]),
                )
            )
    return items


def _advisories(value: Any) -> list[HostAdvisory]:
    items = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, Mapping) and item.get("id"):
            items.append(
                HostAdvisory(
                    id=str(item["id"]),
                    packages=_versions(item.get("packages")),
                    cves=tuple(str(c) for c in item.get("cves") or ()),
                    severity=None if item.get("severity") is None else str(item["severity"]),
                )
            )
    return items


def host_assessments(
    hosts: Sequence[str], outcomes: Mapping[str, HostOutcome], events: Mapping[str, HostEvents]
) -> list[HostAssessment]:
    result = []
    for host in hosts:
        outcome = outcomes[host]
        facts = events.get(host, HostEvents()).facts
        if outcome.status == "unreachable":
            result.append(HostAssessment(host=host, reachable=False, error=outcome.output))
        elif outcome.status == "failed" or "patchgate_upgradable" not in facts:
            error = outcome.output or "the assess job reported no patchgate_upgradable fact"
            result.append(HostAssessment(host=host, reachable=True, error=error))
        else:
            result.append(
                HostAssessment(
                    host=host,
                    reachable=True,
                    upgradable=_upgradable(facts.get("patchgate_upgradable")),
                    advisories=_advisories(facts.get("patchgate_advisories")),
                )
            )
    return result

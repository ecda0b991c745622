"""Per-host results from ansible-runner's job events (pure).

The events read: ``runner_on_ok``, ``runner_on_failed`` (the task's name and message),
``runner_on_unreachable``, ``runner_on_skipped`` and ``playbook_on_stats`` (the final
per-host counts). Versions come from what the playbooks emit (docs/ansible.md): a task
result carrying ``patchgate_report`` (``debug: var=patchgate_report``, or a ``set_fact``
of it) with ``before`` / ``after`` (package -> version or null) and ``reboot_required``;
the assess playbook emits ``patchgate_assessment`` the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workflows.backends import HostAssessment, HostOutcome, HostStatus
from workflows.ports import HostFacts, UpgradablePackage

OUTPUT_LIMIT = 4000
INTERRUPTED = (
    "the ansible-playbook run ended before this host's result was known (interrupted): "
    "its state is unknown, re-read the host before acting on it"
)
NOT_RUN = "the playbook did not run on this host (is it in the inventory under this name?)"


@dataclass
class _Host:
    failed_task: str | None = None
    failure: str = ""
    exit_code: int | None = None
    unreachable: str | None = None
    report: dict[str, Any] = field(default_factory=dict)
    assessment: dict[str, Any] | None = None


def _tail(text: str) -> str:
    return text if len(text) <= OUTPUT_LIMIT else "…" + text[-OUTPUT_LIMIT:]


def result_message(res: Mapping[str, Any]) -> str:
    """What a failed task said: its msg, then stderr/stdout, then the items' messages."""
    parts: list[str] = []
    msg = res.get("msg")
    if msg:
        parts.append(str(msg))
    for key in ("stderr", "stdout"):
        value = res.get(key)
        if value and str(value) not in parts:
            parts.append(str(value))
    for item in res.get("results") or ():
        if isinstance(item, Mapping) and item.get("failed"):
            parts.append(result_message(item))
    return _tail("\n".join(p.strip() for p in parts if p.strip()))


def _emitted(res: Mapping[str, Any], name: str) -> Any:
    if name in res:
        return res[name]
    facts = res.get("ansible_facts")
    if isinstance(facts, Mapping) and name in facts:
        return facts[name]
    return None


def _versions(value: Any) -> dict[str, str | None]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): (None if v is None or v == "" else str(v)) for k, v in value.items()}


def _scan(events: Iterable[Mapping[str, Any]]) -> tuple[dict[str, _Host], dict[str, Any] | None]:
    hosts: dict[str, _Host] = {}
    stats: dict[str, Any] | None = None
    for event in events:
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "playbook_on_stats":
            stats = dict(data)
            continue
        name = data.get("host")
        if not name or not isinstance(kind, str) or not kind.startswith("runner_on_"):
            continue
        host = hosts.setdefault(str(name), _Host())
        res = data.get("res") or {}
        if not isinstance(res, Mapping):
            res = {}
        if kind == "runner_on_unreachable":
            host.unreachable = result_message(res) or "unreachable"
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            if host.failed_task is None:
                host.failed_task = str(data.get("task") or "") or None
                host.failure = result_message(res)
                rc = res.get("rc")
                host.exit_code = rc if isinstance(rc, int) else None
        elif kind == "runner_on_ok":
            report = _emitted(res, "patchgate_report")
            if isinstance(report, Mapping):
                host.report.update(report)
            assessment = _emitted(res, "patchgate_assessment")
            if isinstance(assessment, Mapping):
                host.assessment = dict(assessment)
    return hosts, stats


def _count(stats: Mapping[str, Any], key: str, host: str) -> int:
    table = stats.get(key) or {}
    value = table.get(host, 0) if isinstance(table, Mapping) else 0
    return value if isinstance(value, int) else 0


def outcomes(
    events: Iterable[Mapping[str, Any]],
    hosts: Sequence[str],
    *,
    finished: bool,
    run_output: str = "",
) -> dict[str, HostOutcome]:
    """One outcome per batch host. ``finished``: the run ended (its stats decide each
    host); otherwise it was interrupted and a host without a failure of its own is
    reported failed with INTERRUPTED. A run that ended without stats (a syntax error, a
    missing module) fails every host without a result of its own with ``run_output``."""
    seen, stats = _scan(events)
    result: dict[str, HostOutcome] = {}
    for name in hosts:
        host = seen.get(name, _Host())
        status: HostStatus
        output = ""
        if host.unreachable is not None or (stats and _count(stats, "dark", name)):
            status, output = "unreachable", host.unreachable or "unreachable"
        elif host.failed_task is not None or (stats and _count(stats, "failures", name)):
            status, output = "failed", host.failure
        elif stats is not None and finished:
            done = sum(_count(stats, k, name) for k in ("ok", "changed", "rescued", "ignored"))
            if done:
                status = "applied"
            else:
                status = "skipped"
                output = "" if _count(stats, "skipped", name) else NOT_RUN
        elif finished:
            status = "failed"
            output = _tail(f"the playbook run ended without a result for this host\n{run_output}")
        else:
            status, output = "failed", INTERRUPTED
        result[name] = HostOutcome(
            host=name,
            status=status,
            before=_versions(host.report.get("before")),
            after=_versions(host.report.get("after")),
            output=output,
            failed_task=host.failed_task if status == "failed" else None,
            exit_code=host.exit_code if status == "failed" else None,
            reboot_required=host.report.get("reboot_required") is True,
        )
    return result


def _facts(value: Any) -> HostFacts | None:
    if not isinstance(value, Mapping):
        return None
    manager = str(value.get("package_manager") or "")
    if manager == "dnf5":
        manager = "dnf"
    if manager not in ("apt", "dnf", "yum", "zypper"):
        return None
    try:
        return HostFacts(
            os_id=str(value["os_id"]).lower(),
            os_version=str(value["os_version"]),
            arch=str(value["arch"]),
            kernel=str(value["kernel"]),
            package_manager=manager,  # type: ignore[arg-type]
            boot_id=str(value.get("boot_id") or ""),
            uptime_seconds=float(value.get("uptime_seconds") or 0),
            reboot_required=value.get("reboot_required") is True,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _upgradable(value: Any) -> list[UpgradablePackage]:
    packages: list[UpgradablePackage] = []
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, Mapping) or not item.get("name") or not item.get("candidate"):
            continue
        current = item.get("current")
        packages.append(
            UpgradablePackage(
                name=str(item["name"]),
                current=str(current) if current else None,
                candidate=str(item["candidate"]),
                security=item.get("security") is True,
                source=str(item["source"]) if item.get("source") else None,
            )
        )
    return sorted(packages, key=lambda p: p.name)


def assessments(
    events: Iterable[Mapping[str, Any]], hosts: Sequence[str], *, finished: bool
) -> list[HostAssessment]:
    """One assessment per host: unreachable hosts carry the error; a host whose playbook
    failed or emitted no ``patchgate_assessment`` is an error too (a gap, not silence)."""
    seen, stats = _scan(events)
    result: list[HostAssessment] = []
    for name in hosts:
        host = seen.get(name, _Host())
        if host.unreachable is not None or (stats and _count(stats, "dark", name)):
            result.append(
                HostAssessment(host=name, reachable=False, error=host.unreachable or "unreachable")
            )
        elif host.failed_task is not None:
            error = f"{host.failed_task}: {host.failure}".strip()
            result.append(HostAssessment(host=name, reachable=True, error=error))
        elif host.assessment is None:
            error = NOT_RUN if finished else INTERRUPTED
            result.append(HostAssessment(host=name, reachable=True, error=error))
        else:
            result.append(
                HostAssessment(
                    host=name,
                    reachable=True,
                    facts=_facts(host.assessment.get("facts")),
                    upgradable=_upgradable(host.assessment.get("upgradable")),
                )
            )
    return result

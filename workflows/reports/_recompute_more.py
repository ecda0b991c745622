"""The rest of ``report verify``'s recompute (issue 15's last gap): the facts that only
events written since then carry.

* host_runs.csv: platform, batch, started, finished, exit code, packages (``name was ->
  now``; a rolled-back host's tried versions from the rollout's ``rollout.pinned`` patch
  set) and not_fully_patched, from the run's settling ``host.state`` event. Older events
  lack them: those rows are counted as not recomputable.
* approvals.csv: each vote row's gate_kind, from the gate's ``gate.opened`` or
  ``gate.state`` event; each gate's own decision row (who, ``gate <state>``, reason, when,
  kind) from its last ``gate.state`` event, when that row falls inside the period.
* patchset.csv: each pinned entry (kind, version, KB, catalog id, title, classification)
  from the rollout's ``rollout.pinned`` event (:mod:`workflows.reports._patchsets`).
* coverage.csv, per host: patched_in_period and last_patched from the ``host.state``
  events that settled runs healthy in the period; assessed_in_period and last_assessed
  against the engine's refreshes (``rollout.assessments_refreshed``) in the period; and
  the gaps cell against the row's own columns. Scheduled and CLI assessments write no
  event, so a "yes" in assessed_in_period is not disproved by the events.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from typing import Any

from workflows.reports._patchsets import NAME as PATCHSET_CSV
from workflows.reports._patchsets import check_patchsets
from workflows.reports._recompute import (
    EventFacts,
    _compare,
    _in_period,
    _rows,
    _text,
    check_approvals,
    check_exceptions,
    check_rollouts,
    ts_of,
)


def packages_text(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    attempted: Mapping[str, Any] | None = None,
) -> str:
    """``name 1.1 -> 1.2``; a rolled-back host keeps the version it tried:
    ``name 1.1 -> 1.2 (rolled back to 1.1)`` (``attempted``: the pinned versions)."""
    before, after = before or {}, after or {}
    parts = []
    for name in sorted(set(before) | set(after)):
        was, now = before.get(name) or "(none)", after.get(name) or "(none)"
        tried = (attempted or {}).get(name)
        if attempted is not None and tried:
            parts.append(f"{name} {was} -> {tried} (rolled back to {now})")
        else:
            parts.append(f"{name} {was} -> {now}")
    return "; ".join(parts)


def run_expected(body: Mapping[str, Any], patchset: Mapping[str, Any] | None) -> dict[str, str]:
    """The host_runs.csv cells a settling ``host.state`` event fixes; {} for an event
    written before those facts were added."""
    data = body.get("data") or {}
    if "after_versions" not in data:
        return {}
    left = data.get("left_over") or {}
    expected = {
        "platform": _text(data.get("platform")),
        "batch": _text(data.get("batch")),
        "started": ts_of(data.get("started")),
        "finished": ts_of(data.get("finished")),
        "exit_code": _text(data.get("exit_code")),
        "not_fully_patched": _text("; ".join(f"{p} ({why})" for p, why in sorted(left.items()))),
    }
    attempted = None
    if data.get("to") == "rolled_back":
        if patchset is None:  # pinned before the period: the tried versions are not here
            return expected
        attempted = patchset.get(str(data.get("platform") or ""), {})
    before, after = data.get("before_versions"), data.get("after_versions")
    expected["packages"] = _text(packages_text(before, after, attempted))
    return expected


def check_gates(rows: list[dict[str, str]], facts: EventFacts, problems: list[str]) -> int:
    """gate_kind of every row of a gate whose kind an event names, and each gate's decision
    row against its last gate.state event. Returns the rows whose kind no event names."""
    unknown = 0
    decisions: dict[str, tuple[int, dict[str, str]]] = {}
    for number, row in enumerate(rows, start=2):
        gate = row.get("gate", "")
        if row.get("decision", "").startswith("gate "):
            decisions[gate] = (number, row)
        kind = facts.gate_kinds.get(gate)
        if kind is None:
            unknown += 1
            continue
        if row.get("gate_kind", "") != _text(kind):
            problems.append(
                f"approvals.csv row {number} (gate {gate}): gate_kind is "
                f"{row.get('gate_kind', '')!r}, the gate's events say {kind!r}"
            )
    for gate, body in facts.gate_decisions.items():
        data = body.get("data") or {}
        when = ts_of(body.get("at"))
        found = decisions.get(gate)
        if found is None:
            problems.append(
                f"approvals.csv: no decision row for gate {gate} (gate.state, seq "
                f"{body.get('seq')})"
            )
            continue
        number, row = found
        if row.get("when", "") != when and not _in_period(facts, row.get("when", "")):
            continue  # decided again after the period: the row shows the later decision
        expected = {
            "rollout": _text(body.get("rollout_id")),
            "ring": _text(data.get("ring")),
            "who": _text(data.get("by") or "patchgate"),
            "decision": _text(f"gate {data.get('to')}"),
            "reason": _text(data.get("reason")),
            "when": when,
        }
        where = f"approvals.csv row {number} (gate {gate}, decision)"
        _compare(
            problems, where, row, expected, f"its last gate.state event (seq {body.get('seq')})"
        )
    for gate, (number, row) in sorted(decisions.items(), key=lambda item: item[1][0]):
        if gate not in facts.gate_decisions and _in_period(facts, row.get("when", "")):
            problems.append(
                f"approvals.csv row {number} (gate {gate}): a gate decision in the period "
                "that no gate.state event records"
            )
    return unknown


def check_coverage(rows: list[dict[str, str]], facts: EventFacts, problems: list[str]) -> None:
    """Each host's patched and assessed columns against the period's events."""
    for number, row in enumerate(rows, start=2):
        host = row.get("host", "")
        where = f"coverage.csv row {number} ({host})"
        _coverage_patched(where, host, row, facts, problems)
        _coverage_assessed(where, host, row, facts, problems)


def _coverage_patched(
    where: str, host: str, row: Mapping[str, str], facts: EventFacts, problems: list[str]
) -> None:
    # Runs that went healthy in the period; "final": the run's last event in the bundle is
    # that healthy one and its rollout settled in the period, so no later event undid it.
    healthy = [run for run in facts.healthy.get(host, []) if _in_period(facts, run[1])]
    final = [
        earliest
        for earliest, _, rid in healthy
        if rid in facts.settled
        and ((facts.hosts.get(rid, {}).get(host) or {}).get("data") or {}).get("to") == "healthy"
    ]
    said, last = row.get("patched_in_period", ""), row.get("last_patched", "")
    if said == "yes" and not healthy and not facts.pruned:
        problems.append(
            f"{where}: patched_in_period is 'yes', but no host.state event settles a run of "
            "the host healthy in the period"
        )
    elif said != "yes" and final:
        problems.append(
            f"{where}: patched_in_period is {said!r}, a host.state event settles a run of "
            f"the host healthy in the period, at {max(final)}"
        )
    if _in_period(facts, last) and not any(lo <= last <= hi for lo, hi, _ in healthy):
        problems.append(
            f"{where}: last_patched is {last!r}, but no host.state event settles a run of the "
            "host healthy then"
        )
    elif final and last < max(final):
        problems.append(
            f"{where}: last_patched is {last!r}, a host.state event settles a run of the "
            f"host healthy later, at {max(final)}"
        )


def _coverage_assessed(
    where: str, host: str, row: Mapping[str, str], facts: EventFacts, problems: list[str]
) -> None:
    refreshed = [at for at in facts.assessed.get(host, []) if _in_period(facts, at)]
    said, last = row.get("assessed_in_period", ""), row.get("last_assessed", "")
    if refreshed and said != "yes":
        problems.append(
            f"{where}: assessed_in_period is {said!r}, the engine assessed the host at "
            f"{max(refreshed)} (rollout.assessments_refreshed)"
        )
    if refreshed and last < max(refreshed):
        problems.append(
            f"{where}: last_assessed is {last!r}, the engine assessed the host later, at "
            f"{max(refreshed)} (rollout.assessments_refreshed)"
        )
    gaps = row.get("gaps", "").split("; ")
    if not last and said == "yes":
        problems.append(f"{where}: assessed_in_period is 'yes' with no last_assessed")
    if ("never assessed" in gaps) != (not last):
        problems.append(f"{where}: gaps and last_assessed disagree ('never assessed')")
    if last and ("not assessed in the period" in gaps) != (said != "yes"):
        problems.append(
            f"{where}: gaps and assessed_in_period disagree ('not assessed in the period')"
        )


def recompute(archive: zipfile.ZipFile, facts: EventFacts, problems: list[str]) -> list[str]:
    """Add a problem for every CSV row that differs from the events; return what could
    not be recomputed because the bundle's events predate the facts (one line each)."""
    check_approvals(_rows(archive, "approvals.csv"), facts, problems)
    check_exceptions(_rows(archive, "exceptions.csv"), facts, problems)
    older = check_rollouts(
        _rows(archive, "rollouts.csv"),
        _rows(archive, "host_runs.csv"),
        facts,
        problems,
        run_expected,
    )
    unknown = check_gates(_rows(archive, "approvals.csv"), facts, problems)
    check_coverage(_rows(archive, "coverage.csv"), facts, problems)
    if PATCHSET_CSV in archive.namelist():  # bundles from before issue 21 have none
        check_patchsets(_rows(archive, PATCHSET_CSV), facts, problems)
    notes = []
    if older:
        notes.append(
            f"host_runs.csv: {older} row(s) settled by events that predate their run facts: "
            "platform, batch, times, packages, exit_code and not_fully_patched not recomputed"
        )
    if unknown:
        notes.append(
            f"approvals.csv: {unknown} row(s) of gates whose kind no event in the bundle names: "
            "gate_kind not recomputed"
        )
    return notes

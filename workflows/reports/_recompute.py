"""Recompute a bundle's CSV rows from the audit events in its events.jsonl and name every
row that differs: an edit made consistently to a CSV and manifest.json (or a bundle
re-signed by someone else) still disagrees with the chained events.

What the events record, and so what is recomputed (the CSVs are read from the tables at
build time; a fact is compared only when the events that settle it are in the bundle):

* approvals.csv: every vote row from its ``gate.vote`` event (ring, gate, patch-set hash,
  who, decision, reason, when, source); a vote row inside the period with no event is
  named too.
* exceptions.csv: every exception granted in the period from ``exception.granted``
  (host, package, CVE, owner, reason, expiry, created by, created); a row created in the
  period with no event is named.
* rollouts.csv and host_runs.csv, for a rollout requested and settled inside the period
  (``rollout.requested`` and its settling ``rollout.state``): plan, source, emergency,
  requester, created, state, finished; each host's result (its last ``host.state``) and
  the counts by result.

The facts newer events carry (host_runs' packages, exit codes and times, gate kinds and
decisions, coverage's patched and assessed columns) are checked in
:mod:`workflows.reports._recompute_more`, which also runs the whole recompute.

Text cells are compared after the same formula neutralisation the writer applies.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.reports._zipout import neutralise
from workflows.states import ROLLOUT_SETTLED_VALUES

KINDS = frozenset(
    {
        "gate.vote",
        "gate.opened",
        "gate.state",
        "exception.granted",
        "rollout.requested",
        "rollout.pinned",
        "rollout.state",
        "rollout.assessments_refreshed",
        "host.state",
    }
)
HOST_RESULTS = (
    "healthy",
    "failed",
    "unhealthy",
    "unreachable",
    "rolled_back",
    "rollback_failed",
    "excepted",
    "skipped",
)


def ts_of(at: str | None) -> str:
    """An event time (``…T02:00:00.000000Z``) as the CSVs write times (``…T02:00:00Z``)."""
    return "" if not at else at[:19] + "Z"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    return str(neutralise(value) if isinstance(value, str) else value)


@dataclass
class EventFacts:
    """The events a recompute needs, collected while the chain is walked."""

    since: str = ""
    until: str = ""
    complete: bool = False  # the whole chain in events.jsonl verified
    pruned: bool = False  # the period's first events are in an archive, not in the bundle
    votes: list[dict[str, Any]] = field(default_factory=list)
    granted: dict[str, dict[str, Any]] = field(default_factory=dict)
    requested: dict[str, dict[str, Any]] = field(default_factory=dict)
    settled: dict[str, dict[str, Any]] = field(default_factory=dict)
    hosts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    pinned: dict[str, dict[str, Any]] = field(default_factory=dict)  # rollout -> patch set
    # rollout -> platform -> name -> a vendor update's identity (KB, catalog id; issue 21)
    pinned_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    gate_kinds: dict[str, str] = field(default_factory=dict)
    gate_decisions: dict[str, dict[str, Any]] = field(default_factory=dict)  # last gate.state
    # host -> (earliest, latest, rollout): when a run of it settled healthy
    healthy: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    assessed: dict[str, list[str]] = field(default_factory=dict)  # host -> engine refreshes

    def _add_healthy(self, body: Mapping[str, Any], data: Mapping[str, Any], rid: str) -> None:
        exact = data.get("finished")
        if isinstance(exact, str):
            at = ts_of(exact)
            self.healthy.setdefault(str(data.get("host")), []).append((at, at, rid))
            return
        # An older event: the run's finished_at was stamped just before the event's time,
        # so in whole seconds it is that second or the one before.
        import datetime as dt

        latest = ts_of(body.get("at"))
        when = dt.datetime.strptime(latest, "%Y-%m-%dT%H:%M:%SZ")
        earliest = (when - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.healthy.setdefault(str(data.get("host")), []).append((earliest, latest, rid))

    def add(self, body: Mapping[str, Any]) -> None:
        kind = body.get("kind")
        if kind not in KINDS:
            return
        data = body.get("data") or {}
        rid = str(body.get("rollout_id"))
        if kind == "gate.vote":
            self.votes.append(dict(body))
        elif kind == "exception.granted":
            self.granted[str(data.get("exception_id"))] = dict(body)
        elif kind == "rollout.requested":
            self.requested[rid] = dict(body)
        elif kind == "rollout.state" and data.get("to") in ROLLOUT_SETTLED_VALUES:
            self.settled[rid] = dict(body)
        elif kind == "rollout.pinned":
            self.pinned[rid] = dict(data.get("patchset") or {})
            self.pinned_updates[rid] = dict(data.get("updates") or {})
        elif kind in ("gate.opened", "gate.state"):
            gate = str(data.get("gate_id"))
            if data.get("kind"):  # gate.state carries it since issue 15's last gap
                self.gate_kinds[gate] = str(data["kind"])
            if kind == "gate.state":
                self.gate_decisions[gate] = dict(body)
        elif kind == "rollout.assessments_refreshed":
            at = str(data.get("assessed_at") or body.get("at") or "")
            for host in data.get("refreshed") or ():
                self.assessed.setdefault(str(host), []).append(ts_of(at))
        elif kind == "host.state":
            if data.get("to") == "healthy":
                self._add_healthy(body, data, rid)
            previous = self.hosts.setdefault(rid, {}).get(str(data.get("host")))
            merged = dict(body)
            if not data.get("error") and previous is not None:
                merged["last_error"] = previous.get("last_error")
            else:
                merged["last_error"] = data.get("error")
            self.hosts[rid][str(data.get("host"))] = merged


def _rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    if name not in archive.namelist():
        return []
    text = archive.read(name).decode("utf-8", errors="replace")
    return list(csv.DictReader(io.StringIO(text)))


def _compare(
    problems: list[str],
    where: str,
    row: Mapping[str, str],
    expected: Mapping[str, str],
    source: str,
) -> None:
    for column, value in expected.items():
        if row.get(column, "") != value:
            problems.append(
                f"{where}: {column} is {row.get(column, '')!r}, {source} says {value!r}"
            )


def _in_period(facts: EventFacts, when: str) -> bool:
    return bool(facts.since) and facts.since <= when < facts.until


def check_approvals(rows: list[dict[str, str]], facts: EventFacts, problems: list[str]) -> None:
    votes = {
        (r.get("gate", ""), r.get("who", "")): (n, r)
        for n, r in enumerate(rows, start=2)
        if r.get("decision") in ("approve", "reject")
    }
    matched: set[tuple[str, str]] = set()
    for body in facts.votes:
        data = body.get("data") or {}
        key = (str(data.get("gate_id")), str(body.get("actor")))
        seq = body.get("seq")
        found = votes.get(key)
        if found is None:
            problems.append(
                f"approvals.csv: no row for the vote of {key[1]} on gate {key[0]} "
                f"(gate.vote, seq {seq})"
            )
            continue
        matched.add(key)
        number, row = found
        expected = {
            "rollout": _text(body.get("rollout_id")),
            "ring": _text(data.get("ring")),
            "patchset_hash": _text(data.get("patchset_hash")),
            "decision": _text(data.get("decision")),
            "reason": _text(data.get("reason")),
            "when": ts_of(body.get("at")),
            "source": _text(data.get("source")),
        }
        where = f"approvals.csv row {number} (gate {key[0]}, {key[1]})"
        _compare(problems, where, row, expected, f"the gate.vote event (seq {seq})")
    for key, (number, row) in sorted(votes.items(), key=lambda item: item[1][0]):
        if key not in matched and _in_period(facts, row.get("when", "")):
            problems.append(
                f"approvals.csv row {number} (gate {key[0]}, {key[1]}): a vote in the period "
                "that no gate.vote event records"
            )


def _expiry(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return ""
    import datetime as dt

    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_exceptions(rows: list[dict[str, str]], facts: EventFacts, problems: list[str]) -> None:
    by_id = {r.get("exception", ""): (n, r) for n, r in enumerate(rows, start=2)}
    for eid, body in facts.granted.items():
        data = body.get("data") or {}
        seq = body.get("seq")
        found = by_id.get(eid)
        if found is None:
            problems.append(
                f"exceptions.csv: no row for exception {eid} (exception.granted, seq {seq})"
            )
            continue
        number, row = found
        expected = {
            "host": _text(data.get("host")),
            "package": _text(data.get("package")),
            "cve": _text(data.get("cve")),
            "owner": _text(data.get("owner")),
            "reason": _text(data.get("reason")),
            "expiry": _expiry(data.get("expires_at")),
            "created_by": _text(body.get("actor")),
            "created": ts_of(body.get("at")),
        }
        where = f"exceptions.csv row {number} (exception {eid})"
        _compare(problems, where, row, expected, f"the exception.granted event (seq {seq})")
    for eid, (number, row) in by_id.items():
        if eid not in facts.granted and _in_period(facts, row.get("created", "")):
            problems.append(
                f"exceptions.csv row {number} (exception {eid}): granted in the period but "
                "no exception.granted event records it"
            )


RunFacts = Callable[[Mapping[str, Any], Mapping[str, Any] | None], dict[str, str]]


def check_rollouts(
    rollouts: list[dict[str, str]],
    host_runs: list[dict[str, str]],
    facts: EventFacts,
    problems: list[str],
    run_facts: RunFacts | None = None,
) -> int:
    """Returns the host_runs.csv rows whose settling event predates their run facts."""
    older = 0
    by_id = {r.get("rollout", ""): (n, r) for n, r in enumerate(rollouts, start=2)}
    runs = {
        (r.get("rollout", ""), r.get("host", "")): (n, r) for n, r in enumerate(host_runs, start=2)
    }
    for rid, requested in facts.requested.items():
        settled = facts.settled.get(rid)
        if settled is None:
            continue  # not settled inside the period: its final figures are not in the events
        found = by_id.get(rid)
        if found is None:
            problems.append(
                f"rollouts.csv: no row for rollout {rid} (rollout.requested, seq "
                f"{requested.get('seq')})"
            )
            continue
        number, row = found
        data = requested.get("data") or {}
        hosts = facts.hosts.get(rid, {})
        counts = {result: 0 for result in HOST_RESULTS}
        for body in hosts.values():
            to = (body.get("data") or {}).get("to")
            if to in counts:
                counts[to] += 1
        expected = {
            "plan": _text(data.get("plan")),
            "source": _text(data.get("source")),
            "emergency": "yes" if data.get("emergency") else "no",
            "requested_by": _text(requested.get("actor")),
            "created": ts_of(requested.get("at")),
            "state": _text((settled.get("data") or {}).get("to")),
            "finished": ts_of(settled.get("at")),
            "hosts": str(len(hosts)),
            **{result: str(n) for result, n in counts.items()},
        }
        where = f"rollouts.csv row {number} (rollout {rid})"
        _compare(problems, where, row, expected, "the rollout's events")
        for host, body in sorted(hosts.items()):
            hit = runs.get((rid, host))
            if hit is None:
                problems.append(
                    f"host_runs.csv: no row for {host} in rollout {rid} (host.state, seq "
                    f"{body.get('seq')})"
                )
                continue
            run_number, run = hit
            expected = {
                "result": _text((body.get("data") or {}).get("to")),
                "error": _text(body.get("last_error")),
            }
            more = run_facts(body, facts.pinned.get(rid)) if run_facts else {}
            older += not more
            _compare(
                problems,
                f"host_runs.csv row {run_number} (rollout {rid}, {host})",
                run,
                {**expected, **more},
                f"its last host.state event (seq {body.get('seq')})",
            )
        extra = sorted(h for (r, h) in runs if r == rid and h not in hosts)
        for host in extra:
            problems.append(
                f"host_runs.csv row {runs[(rid, host)][0]} (rollout {rid}, {host}): a host "
                "run no host.state event records"
            )
    return older

"""The AWX emulator's playbook run: the host summaries and job events AWX records.

Each host of the job's limit that is in its inventory (and enabled) follows the template's
``HostScript``; the events are those the example patch playbooks produce, in AWX's event
shape (``event``, ``host_name``, ``task``, ``event_data.res``):

  Gathering Facts                       runner_on_ok (runner_on_unreachable: unreachable)
  patchgate: record versions before     runner_on_ok, res.ansible_facts.patchgate_before
  <the script's task>                   runner_on_ok (changed or not) / runner_on_failed
  patchgate: report versions            runner_on_ok, patchgate_after, _reboot_required
  (assess) patchgate: report pending updates   patchgate_upgradable, patchgate_advisories
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.awx_api import AwxEmulator, FakeJob


def run_playbook(
    awx: AwxEmulator, job: FakeJob, *, cancel: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if cancel:
        return [], []
    inv = awx.inventories.get(job.inventory or -1, {"hosts": []})
    enabled = {h["name"]: h for h in inv["hosts"] if h["enabled"]}
    wanted = [h for h in job.limit.split(",") if h] if job.limit else list(enabled)
    action = job.extra_vars.get("patchgate_action", "apply")
    versions = job.extra_vars.get("patchgate_versions") or {}
    summaries: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def emit(host: str, kind: str, task: str, res: dict[str, Any], changed: bool = False) -> None:
        events.append(
            {
                "id": awx._next_id(),
                "counter": len(events) + 1,
                "event": kind,
                "host_name": host,
                "task": task,
                "play": "patch",
                "failed": kind in ("runner_on_failed", "runner_on_unreachable"),
                "changed": changed,
                "event_data": {"host": host, "task": task, "res": res},
            }
        )

    for host in wanted:
        if host not in enabled:
            continue  # ansible: "Could not match supplied host pattern"
        script = job.template.scripts.get(host, job.template.default)
        counts = {"ok": 0, "changed": 0, "dark": 0, "failures": 0, "skipped": 0}
        installed = awx.installed.setdefault(host, {})
        wanted_versions: dict[str, Any] = dict(versions.get(host) or {})
        if script.result == "unreachable":
            msg = script.msg or f"Failed to connect to the host via ssh: connect to host {host}"
            emit(
                host, "runner_on_unreachable", "Gathering Facts", {"msg": msg, "unreachable": True}
            )
            counts["dark"] = 1
        elif script.result == "skipped":
            for task in ("Gathering Facts", script.task):
                emit(host, "runner_on_skipped", task, {"skipped": True})
            counts["skipped"] = 2
        else:
            emit(host, "runner_on_ok", "Gathering Facts", {"ansible_facts": {"os": "debian"}})
            counts["ok"] += 1
            before = (
                dict(script.before)
                if script.before is not None
                else {p: installed.get(p) for p in wanted_versions}
            )
            if script.report and action in ("apply", "rollback"):
                emit(
                    host,
                    "runner_on_ok",
                    "patchgate: record versions before",
                    {"ansible_facts": {"patchgate_before": before}, "changed": False},
                )
                counts["ok"] += 1
            if script.result == "failed":
                res: dict[str, Any] = {"msg": script.msg or "task failed", "failed": True}
                if script.rc is not None:
                    res["rc"] = script.rc
                emit(host, "runner_on_failed", script.task, res)
                counts["failures"] = 1
            else:
                changed = script.result == "changed"
                emit(host, "runner_on_ok", script.task, {"changed": changed}, changed=changed)
                counts["changed" if changed else "ok"] += 1
                after = dict(before)
                if changed:
                    after.update(wanted_versions)
                    installed.update(wanted_versions)
                if action == "assess":
                    facts = job.template.assess_facts.get(host, {"patchgate_upgradable": []})
                    emit(
                        host,
                        "runner_on_ok",
                        "patchgate: report pending updates",
                        {"ansible_facts": dict(facts)},
                    )
                elif script.report:
                    facts_after: dict[str, Any] = {
                        "patchgate_reboot_required": script.reboot_required
                    }
                    if action in ("apply", "rollback"):
                        facts_after["patchgate_after"] = after
                    emit(
                        host,
                        "runner_on_ok",
                        "patchgate: report versions",
                        {"ansible_facts": facts_after},
                    )
                counts["ok"] += 1
        summaries.append(
            {
                "id": awx._next_id(),
                "type": "job_host_summary",
                "job": job.id,
                "host": enabled[host]["id"],
                "host_name": host,
                **counts,
                "processed": 1,
                "failed": bool(counts["failures"] or counts["dark"]),
                "ignored": 0,
                "rescued": 0,
            }
        )
    return summaries, events

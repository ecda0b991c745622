"""``/patch zones``: the zone workers as the broker sees them right now.

Per zone (every zone the inventory names, and every zone a worker serves): the hosts in
it, the live workers, the calls queued for them and the last heartbeat. A zone with
hosts and no worker is flagged: its hosts wait (``PATCHGATE_ZONE_WAIT``) when a rollout
reaches them. Any replica can answer (it asks the broker, not the leader); without
``PATCHGATE_BROKER_URL`` it says every host is worked on by the leader. Acks at once and
answers after the ack (the broadcast waits a second for the workers' replies).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Sequence
from functools import partial

from bot.slack.commands.registry import (
    Invocation,
    Later,
    Registry,
    Reply,
    Subcommand,
    UsageError,
    ephemeral,
)
from bot.slack.deps import SlackDeps

USAGE = "zones"


def parse_zones(words: Sequence[str]) -> None:
    if words:
        raise UsageError("`/patch zones` takes no arguments", usage=USAGE)


def _hosts_per_zone(deps: SlackDeps) -> Counter[str]:
    var = deps.settings.zone_var
    counts: Counter[str] = Counter()
    for host in deps.inventory.hosts():
        zone = host.vars.get(var)
        if zone not in (None, ""):
            counts[str(zone)] += 1
    return counts


def _look(
    broker: str, backend: str | None, zones: set[str]
) -> tuple[dict[str, list[str]], dict[str, int | None], bool]:
    from integrations.zones.celeryapp import make_app
    from integrations.zones.monitor import look

    try:
        workers, depth = look(make_app(broker, result_backend=backend), zones)
    except Exception:  # the broker unreachable: say so rather than "no workers"
        return {}, {}, False
    by_zone: dict[str, list[str]] = {}
    for worker in workers.values():
        by_zone.setdefault(worker.zone, []).append(worker.name)
    return by_zone, depth, True


async def zones_answer(deps: SlackDeps) -> Reply:
    hosts = await asyncio.to_thread(_hosts_per_zone, deps)
    broker = deps.settings.broker_url
    if broker is None:
        if not hosts:
            return ephemeral("No zones: every host is worked on by the leader (no broker set).")
        names = ", ".join(f"`{z}`" for z in sorted(hosts))
        return ephemeral(
            f":warning: The inventory puts hosts in zones ({names}) but PATCHGATE_BROKER_URL "
            "is not set: their steps fail until it is and the zones' workers run."
        )
    backend = deps.settings.broker_result_backend
    workers, depth, ok = await asyncio.to_thread(
        _look,
        broker.get_secret_value(),
        None if backend is None else backend.get_secret_value(),
        set(hosts),
    )
    if not ok:
        return ephemeral(":warning: The broker does not answer: zone health is unknown.")
    at = dt.datetime.fromtimestamp(time.time(), dt.UTC).strftime("%H:%M:%S UTC")
    lines = [f"*Zones* (heartbeats at {at})"]
    for zone in sorted(set(hosts) | set(workers)):
        live = sorted(workers.get(zone, []))
        queued = depth.get(zone) or 0
        flag = ":red_circle:" if hosts[zone] and not live else ":large_green_circle:"
        text = f"{flag} `{zone}`: {hosts[zone]} hosts, {len(live)} workers, {queued} queued"
        if hosts[zone] and not live:
            text += f" — no worker: its hosts wait (`patchgate worker --zone {zone}`)"
        lines.append(text)
    if len(lines) == 1:
        lines.append("No zone has hosts or workers.")
    return ephemeral("\n".join(lines))


async def run_zones(deps: SlackDeps, who: Invocation, cmd: None) -> Later:
    return Later(ephemeral("Asking the zone workers…"), partial(zones_answer, deps))


def register(registry: Registry) -> None:
    registry.add(
        Subcommand(
            "zones",
            USAGE,
            "zone workers: hosts, live workers and queued calls per zone",
            parse_zones,
            run_zones,
        )
    )

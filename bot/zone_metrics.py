"""Zone health on ``/metrics``: workers per zone, queue depth, last heartbeat.

Read from the leader's zone monitor (integrations/zones/monitor.py) when the metrics
snapshot is taken; nothing on a replica that never routed a host to a zone.
``patchgate_zone_down`` is the alert: 1 for a zone with work waiting (hosts waiting, calls
in flight or messages queued) and no live worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

ZoneSource = Callable[[], Sequence[Any]]  # integrations.zones.monitor.ZoneView items


def zone_views(executor: Any) -> Sequence[Any]:
    """The zones the leader's router knows, or none (no zone was ever used)."""
    client = getattr(executor, "client", None)
    zones = getattr(client, "zones", None)
    return list(zones()) if callable(zones) else []


class ZoneCollector(Collector):
    def __init__(self, source: ZoneSource, *, lost_after: float = 10.0) -> None:
        self.source = source
        self.lost_after = lost_after

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        now = time.time()
        families = {
            "workers": GaugeMetricFamily(
                "patchgate_zone_workers", "Live workers per zone.", labels=["zone"]
            ),
            "depth": GaugeMetricFamily(
                "patchgate_zone_queue_depth",
                "Calls queued for the zone's workers.",
                labels=["zone"],
            ),
            "heartbeat": GaugeMetricFamily(
                "patchgate_zone_last_heartbeat_timestamp_seconds",
                "When a worker of the zone last answered (0: never).",
                labels=["zone"],
            ),
            "waiting": GaugeMetricFamily(
                "patchgate_zone_waiting_hosts",
                "Host steps waiting for a live worker of the zone.",
                labels=["zone"],
            ),
            "in_flight": GaugeMetricFamily(
                "patchgate_zone_in_flight",
                "Calls sent to the zone, not yet answered.",
                labels=["zone"],
            ),
            "down": GaugeMetricFamily(
                "patchgate_zone_down",
                "1 when the zone has work waiting and no live worker.",
                labels=["zone"],
            ),
        }
        for view in self.source():
            live = len(view.live(now, self.lost_after))
            busy = view.waiting_hosts or view.in_flight or (view.queue_depth or 0)
            families["workers"].add_metric([view.zone], live)
            families["depth"].add_metric([view.zone], view.queue_depth or 0)
            families["heartbeat"].add_metric([view.zone], view.last_heartbeat or 0)
            families["waiting"].add_metric([view.zone], view.waiting_hosts)
            families["in_flight"].add_metric([view.zone], view.in_flight)
            families["down"].add_metric([view.zone], 1 if busy and not live else 0)
        yield from families.values()

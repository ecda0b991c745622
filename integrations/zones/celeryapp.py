"""The Celery app the leader and the zone workers both build (never at import time).

JSON only (``accept_content=["json"]``: a pickle from the broker is refused), late acks
with ``reject_on_worker_lost`` (a message whose worker died goes back to the queue),
one message prefetched per slot, ``track_started`` (the leader sees which worker holds a
call). Results: the broker itself for Redis; ``rpc://`` (replies as messages) for
RabbitMQ, unless ``result_backend`` names one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Celery

TASK = "patchgate.zone.run"
STATUS_COMMAND = "patchgate_status"
QUEUE_PREFIX = "patchgate.zone."
ZONE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def queue_name(zone: str) -> str:
    if not ZONE_NAME.match(zone):
        raise ValueError(f"bad zone name {zone!r} (letters, digits, '.', '_', '-')")
    return f"{QUEUE_PREFIX}{zone}"


def default_result_backend(broker_url: str) -> str:
    if broker_url.startswith(("redis://", "rediss://", "redis+socket://")):
        return broker_url
    return "rpc://"


def make_app(
    broker_url: str,
    *,
    result_backend: str | None = None,
    visibility_timeout: float = 3600,
) -> Celery:
    from celery import Celery

    app = Celery("patchgate", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        result_backend=result_backend or default_result_backend(broker_url),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options={"visibility_timeout": visibility_timeout},
        result_backend_transport_options={"visibility_timeout": visibility_timeout},
        result_expires=24 * 3600,
        result_persistent=True,
        task_create_missing_queues=True,
        task_default_queue="patchgate.zone.unrouted",
    )
    return app

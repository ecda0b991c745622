"""The zone-worker settings (issue 24), a base of :class:`bot.settings.Settings`.

``PATCHGATE_BROKER_URL`` names the Celery broker (``redis://…`` or ``amqp://…``); unset,
every host is worked on by the leader and no broker is contacted. The rest tune how the
leader watches the zones and how a worker runs.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings


class ZoneSettings(BaseSettings):
    # The Celery broker of the zone workers (a secret: it may carry a password).
    broker_url: SecretStr | None = None
    # Where results come back; default: the broker for Redis, rpc:// for RabbitMQ.
    broker_result_backend: SecretStr | None = None
    # Redis only: seconds before an unacknowledged call goes back to its queue (longer
    # than the longest apply; the leader re-sends lost calls itself sooner).
    broker_visibility_timeout: float = Field(default=7200, gt=0)
    # The inventory variable naming a host's zone (unset: the leader works on it).
    zone_var: str = Field(default="patchgate_zone", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Seconds a zoned host waits for a live worker of its zone before its step fails.
    zone_wait: float = Field(default=900, gt=0)
    # Seconds a zone with waiting hosts has no live worker before on-call is alerted in
    # Slack (PATCHGATE_ONCALL_CHANNEL; a recovery note follows when a worker is back).
    zone_alert_after: float = Field(default=30, ge=0)
    # Seconds between the leader's looks at the workers (their heartbeat).
    zone_heartbeat: float = Field(default=2, gt=0)
    # Seconds without a heartbeat before a worker counts as gone (and its calls re-sent).
    zone_lost_after: float = Field(default=10, gt=0)
    # Seconds between a worker's looks at itself through the broker (its own status
    # request, as the leader's heartbeat asks it); after three unanswered looks while the
    # broker answers, the worker starts afresh. 0: no looks.
    worker_self_check: float = Field(default=20, ge=0)
    # Calls one `patchgate worker` runs at once (default PATCHGATE_SSH_CONCURRENCY).
    worker_concurrency: int | None = Field(default=None, ge=1, le=1000)
    # Test-only: POINT:SECONDS (before_apply, after_apply) makes a worker note the point
    # in PATCHGATE_TEST_STEP_LOG and pause there, for a test to SIGKILL it; status: the
    # worker's first status reply pauses (a consumer deaf to the broker).
    test_worker_pause: str | None = Field(
        default=None, pattern=r"^(before_apply|after_apply|status):[0-9]+(\.[0-9]+)?$"
    )

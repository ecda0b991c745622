"""The one way PatchGate builds a Slack Web API client.

slack_sdk's in-call retries are off: the outbox worker owns retrying deliveries, and an
interactive handler must answer within Slack's 3 seconds rather than sleep on a 429.
"""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

DEFAULT_TIMEOUT = 10


def make_client(
    *, token: str | None, base_url: str, timeout: int = DEFAULT_TIMEOUT
) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])

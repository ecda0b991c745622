"""Work after an ack, and errors told to the person.

The Bolt app answers when a listener returns (``process_before_response``: Bolt awaits
the listener instead of polling for its ``ack()`` every 10 ms). What a listener does
after its ``ack()`` it hands to :func:`defer`, which runs it as a task once the listener
has returned, with its errors told as the app's error handler (:func:`tell_error`) tells
a listener's. Bolt's lazy listeners would do the same, but Bolt deep-copies the request
for each of them, context included, and the context's Web API client holds the shared
aiohttp session (``bot.server.open_slack_session``), which cannot be copied.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from bot.slack import texts
from bot.slack.deps import SlackDeps
from workflows.errors import PatchGateError

log = logging.getLogger("patchgate.slack")


async def tell_error(deps: SlackDeps, error: Exception, body: dict[str, Any]) -> None:
    """A listener failed: the person is told ephemerally (a refusal's own words, or a
    reference to the logged traceback)."""
    user = (body.get("user") or {}).get("id") or body.get("user_id")
    channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
    if isinstance(error, PatchGateError):
        text = texts.refused(error)
        log.warning("Slack request refused: %s", error)
    else:
        ref = uuid.uuid4().hex[:8]
        log.error("Slack handler failed (reference %s)", ref, exc_info=error)
        text = texts.went_wrong(ref)
    if user and channel:
        try:
            await deps.client.chat_postEphemeral(channel=channel, user=user, text=text)
        except Exception:
            log.warning("could not tell %s about the error", user)


class Deferred:
    """The work after acks running in this process (tests wait for it)."""

    tasks: ClassVar[set[asyncio.Task[None]]] = set()


def defer(deps: SlackDeps, body: dict[str, Any], work: Callable[[], Awaitable[Any]]) -> None:
    """Run ``work`` after the answer to the request ``body`` (the listener returns
    first); an error in it is told to the person as a listener's would be."""

    async def run() -> None:
        try:
            await work()
        except Exception as error:
            await tell_error(deps, error, body)

    task = asyncio.create_task(run(), name="slack-after-ack")
    Deferred.tasks.add(task)
    task.add_done_callback(Deferred.tasks.discard)

"""``POST /jira/webhook/<secret>`` (or ``/jira/webhook`` with the secret in the header
``X-PatchGate-Webhook-Secret``, or signed by Jira with ``X-Hub-Signature: sha256=<HMAC of
the body>``): Jira's webhooks, Cloud and Server/Data Center.

In order, each failure answering at once and changing nothing: the secret (compared in
constant time; 401), the size (at most ``MAX_BODY`` bytes; 413), the shape
(``integrations.jira_events.parse_webhook``; 400), the age (Jira's ``timestamp`` older
than ``PATCHGATE_JIRA_WEBHOOK_MAX_AGE`` seconds, or that far in the future; 403), the
replay (a delivery identifier, Cloud's ``X-Atlassian-Webhook-Identifier`` or else the
body's SHA-256, seen before; 409). Then the votes are decided (``bot.jira.votes``) and
the answer is 200 with how many were counted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable

from aiohttp import web

from bot.jira.votes import JiraVotes
from integrations.jira_events import MAX_BODY, BadWebhook, parse_webhook
from integrations.slack import DirectoryUnavailable

log = logging.getLogger("patchgate.jira")

SECRET_HEADER = "X-PatchGate-Webhook-Secret"
SIGNATURE_HEADER = "X-Hub-Signature"
IDENTIFIER_HEADER = "X-Atlassian-Webhook-Identifier"


class JiraWebhook:
    def __init__(
        self,
        votes: JiraVotes,
        *,
        secret: str,
        max_age: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.votes = votes
        self._wall_clock = wall_clock  # Jira's timestamps are real time, not the engine's clock
        self._secret = secret.encode()
        self.max_age = max_age
        self.refused: dict[str, int] = {}  # reason -> count, for logs and tests

    def register(self, app: web.Application) -> None:
        app.router.add_post("/jira/webhook", self.handle)
        app.router.add_post("/jira/webhook/{secret}", self.handle)

    def _authentic(self, request: web.Request, body: bytes) -> bool:
        given = request.match_info.get("secret") or request.headers.get(SECRET_HEADER)
        if given is not None:
            return hmac.compare_digest(given.encode(), self._secret)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if signature.startswith("sha256="):
            expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            return hmac.compare_digest(
                signature.removeprefix("sha256=").encode(), expected.encode()
            )
        return False

    def _refuse(self, status: int, reason: str) -> web.Response:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        log.warning("refused a Jira webhook delivery: %s", reason)
        return web.json_response({"error": reason}, status=status)

    async def handle(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return self._refuse(413, "too_large")
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return self._refuse(413, "too_large")
        if not self._authentic(request, body):
            return self._refuse(401, "bad_secret")
        try:
            delivery = parse_webhook(body)
        except BadWebhook as exc:
            return self._refuse(400, f"malformed: {exc}")
        if delivery.timestamp_ms is not None:
            age = self._wall_clock() - delivery.timestamp_ms / 1000
            if abs(age) > self.max_age:
                return self._refuse(403, "stale")
        identifier = request.headers.get(IDENTIFIER_HEADER) or hashlib.sha256(body).hexdigest()
        try:
            outcomes = await self.votes.record(
                delivery.events,
                delivery=f"webhook:{identifier[:200]}",
                issues=[delivery.created] if delivery.created is not None else [],
            )
        except DirectoryUnavailable as exc:
            log.warning("Jira webhook: %s; Jira may deliver it again", exc)
            return web.json_response({"error": "slack_unavailable"}, status=503)
        if outcomes is None:
            return self._refuse(409, "replayed")
        return web.json_response(
            {
                "counted": sum(1 for o in outcomes if o.accepted),
                "refused": sum(1 for o in outcomes if not o.accepted),
            }
        )

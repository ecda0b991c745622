"""The exception form's submission: ``workflows.exceptions.grant``, as the CLI calls it.

Missing fields, the domain's validation errors (owner, reason, expiry too far ahead) and
refusals are shown in the form (``response_action: errors``) and nothing is written but
the audited refusal. On success the form closes and the person who granted it gets an
ephemeral confirmation where they typed the command.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.slack import texts
from bot.slack.deps import SlackDeps
from bot.slack.exceptions.blocks import ExceptionForm
from bot.slack.exceptions.command import plan_terms
from bot.slack.exceptions.ids import ExceptionModal
from bot.slack.forms import field, form_values, refuse_metadata
from bot.slack.later import defer
from workflows import exceptions
from workflows.db import unit_of_work
from workflows.errors import Conflict, Forbidden, InputError
from workflows.models import HostException

log = logging.getLogger("patchgate.slack")

FIELD_WORDS = (
    ("owner", ExceptionModal.OWNER_BLOCK),
    ("expiry", ExceptionModal.EXPIRY_BLOCK),
)


def field_errors(message: str) -> dict[str, str]:
    """The domain's ``;``-joined problems, each on the form field it is about."""
    errors: dict[str, list[str]] = {}
    for problem in message.split("; "):
        block = next((b for word, b in FIELD_WORDS if word in problem), ExceptionModal.REASON_BLOCK)
        errors.setdefault(block, []).append(problem)
    return {block: "; ".join(problems) for block, problems in errors.items()}


def end_of_day(text: str, zone: str) -> dt.datetime:
    day = dt.date.fromisoformat(text)
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=ZoneInfo(zone))


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        raw = view.get("private_metadata")
        try:
            form = ExceptionForm.model_validate_json(raw if isinstance(raw, str) else "")
        except ValidationError:
            await refuse_metadata(deps, body, raw, "exception")
            await ack(
                response_action="errors",
                errors={ExceptionModal.REASON_BLOCK: texts.STALE_EXCEPTION_FORM},
            )
            return
        values = form_values(view)
        reason = field(values, ExceptionModal.REASON_BLOCK, ExceptionModal.REASON_INPUT, "value")
        owner = field(
            values, ExceptionModal.OWNER_BLOCK, ExceptionModal.OWNER_INPUT, "selected_user"
        )
        day = field(
            values, ExceptionModal.EXPIRY_BLOCK, ExceptionModal.EXPIRY_INPUT, "selected_date"
        )
        missing: dict[str, str] = {}
        if not reason:
            missing[ExceptionModal.REASON_BLOCK] = texts.EXCEPTION_NEEDS_REASON
        if not owner:
            missing[ExceptionModal.OWNER_BLOCK] = texts.EXCEPTION_NEEDS_OWNER
        if not day:
            missing[ExceptionModal.EXPIRY_BLOCK] = texts.EXCEPTION_NEEDS_EXPIRY
        if missing:
            await ack(response_action="errors", errors=missing)
            return
        try:
            expires = end_of_day(day, deps.settings.timezone)
        except ValueError:
            await ack(
                response_action="errors",
                errors={ExceptionModal.EXPIRY_BLOCK: texts.not_a_date(day)},
            )
            return
        actor = await deps.actor(body["user"]["id"])
        try:
            terms = await plan_terms(deps, form.plan)
            async with unit_of_work(deps.db) as session:
                result = await exceptions.grant(
                    session,
                    actor=actor,
                    operators=deps.operators,
                    host=form.host,
                    package=form.package,
                    cve=form.cve,
                    owner=owner,
                    reason=reason,
                    expires_at=expires,
                    now=deps.clock.now(),
                    max_days=terms.max_days,
                    project=terms.project,
                    issue_type=terms.issue_type,
                    channel=terms.channel or deps.settings.exceptions_channel or form.channel_id,
                )
        except InputError as exc:
            await ack(response_action="errors", errors=field_errors(str(exc)))
            return
        except Conflict as exc:
            await ack(response_action="errors", errors={ExceptionModal.REASON_BLOCK: str(exc)})
            return
        if isinstance(result, Forbidden):
            await ack(response_action="errors", errors={ExceptionModal.REASON_BLOCK: str(result)})
            return
        await ack()
        defer(deps, body, lambda: confirm(body, form, result))

    async def confirm(body: dict[str, Any], form: ExceptionForm, row: HostException) -> None:
        if not form.channel_id:
            return
        scope = row.host_name + (f" package `{row.package}`" if row.package else "")
        try:
            await deps.client.chat_postEphemeral(
                channel=form.channel_id,
                user=body["user"]["id"],
                text=texts.exception_granted(row.id, scope, row.expires_at, row.owner),
            )
        except Exception as exc:  # the exception is granted; only the note is lost
            log.warning("could not confirm exception #%s: %s", row.id, exc)

    app.view(ExceptionModal.CALLBACK.value)(submitted)

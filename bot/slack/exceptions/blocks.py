"""The exception form: a modal asking reason, owner and expiry for a host (or a package)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.slack import texts
from bot.slack.exceptions.ids import ExceptionModal


class ExceptionForm(BaseModel):
    """What the modal's ``private_metadata`` carries: the scope and where to answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    package: str | None = None
    cve: str | None = None  # without a package: the package comes from the assessment
    plan: str | None = None  # the plan whose maximum, Jira project and channel apply
    channel_id: str | None = None

    def dump(self) -> str:
        return self.model_dump_json()


def exception_modal(form: ExceptionForm, *, owner: str, max_days: int) -> dict[str, Any]:
    what = f"package `{form.package}` on `{form.host}`" if form.package else f"host `{form.host}`"
    if form.cve:
        what = (
            f"{what} for {form.cve}"
            if form.package
            else f"the package fixing {form.cve} on `{form.host}` (from its latest assessment)"
        )
    return {
        "type": "modal",
        "callback_id": ExceptionModal.CALLBACK,
        "private_metadata": form.dump(),
        "title": {"type": "plain_text", "text": texts.EXCEPTION_TITLE},
        "submit": {"type": "plain_text", "text": texts.EXCEPTION_SUBMIT},
        "close": {"type": "plain_text", "text": texts.CANCEL},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": texts.exception_intro(what, max_days),
                },
            },
            {
                "type": "input",
                "block_id": ExceptionModal.REASON_BLOCK,
                "label": {"type": "plain_text", "text": texts.EXCEPTION_REASON_LABEL},
                "element": {
                    "type": "plain_text_input",
                    "action_id": ExceptionModal.REASON_INPUT,
                    "multiline": True,
                    "min_length": 1,
                    "max_length": 2000,
                },
            },
            {
                "type": "input",
                "block_id": ExceptionModal.OWNER_BLOCK,
                "label": {"type": "plain_text", "text": texts.EXCEPTION_OWNER_LABEL},
                "element": {
                    "type": "users_select",
                    "action_id": ExceptionModal.OWNER_INPUT,
                    "initial_user": owner,
                },
            },
            {
                "type": "input",
                "block_id": ExceptionModal.EXPIRY_BLOCK,
                "label": {"type": "plain_text", "text": texts.EXCEPTION_EXPIRY_LABEL},
                "element": {"type": "datepicker", "action_id": ExceptionModal.EXPIRY_INPUT},
            },
        ],
    }

"""Reading a submitted modal: its typed fields and its ``private_metadata``, whatever
shapes a forged (but signed) submission gives them.

A field of another JSON type than Slack sends reads as empty (the form then says the
field is missing); ``private_metadata`` that is not the model PatchGate put there (not
JSON, nested, numbers where text belongs, ids beyond any row) is refused in the form
and audited as ``slack.request.refused`` with reason ``bad_form_metadata``.
"""

from __future__ import annotations

from typing import Any

from bot.slack.deps import SlackDeps
from bot.slack.security import RefusalAudit


def form_values(view: dict[str, Any]) -> dict[str, Any]:
    """``view.state.values`` if it is an object, else empty."""
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    return values if isinstance(values, dict) else {}


def field(values: dict[str, Any], block: str, action: str, key: str) -> str:
    """One input's value, stripped; empty when absent or not text."""
    element = values.get(block)
    element = element.get(action) if isinstance(element, dict) else None
    value = element.get(key) if isinstance(element, dict) else None
    return value.strip() if isinstance(value, str) else ""


async def refuse_metadata(deps: SlackDeps, body: dict[str, Any], raw: object, form: str) -> None:
    """Audit a submission whose ``private_metadata`` PatchGate did not make."""
    user = (body.get("user") or {}).get("id")
    detail = f"{form} form's private_metadata {str(raw)[:120]!r} is not one PatchGate made"
    await RefusalAudit(deps.db, deps.clock).signed(
        "bad_form_metadata", detail, user=user if isinstance(user, str) else None
    )

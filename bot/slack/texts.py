"""What the Slack face says to people: ephemeral replies, refusals and modal texts.

Handlers and block builders take their sentences from here, so the wording of the face
is read (and changed) in one place. Tests assert some of these texts word for word.
"""

from __future__ import annotations

import datetime as dt

# --- every feature ----------------------------------------------------------------------

UNKNOWN_BUTTON = "This button is not one PatchGate understands."
CANCEL = "Cancel"


def refused(reason: object) -> str:
    """A request PatchGate refused, in the refusal's own words."""
    return f":warning: {reason}"


def went_wrong(ref: str) -> str:
    """A handler failed; ``ref`` finds its traceback in the log."""
    return f":warning: Something went wrong (reference `{ref}`)."


# --- /patch -----------------------------------------------------------------------------


def usage(error: object, usage: str | None) -> str:
    """A /patch command that could not be understood, with its usage line."""
    text = refused(error)
    if usage:
        text += f"\nUsage: `/patch {usage}`"
    return text + "\n`/patch help` lists every subcommand."


# --- gates ------------------------------------------------------------------------------

STALE_FORM = "stale form"
REJECTION_NEEDS_REASON = "A rejection needs a reason."
REJECT_TITLE = "Reject the gate"
REJECT_SUBMIT = "Reject"
REJECT_REASON_LABEL = "Reason (recorded and posted)"


def decided(accepted: bool, message: str) -> str:
    """The outcome of an Approve click, told to the clicker."""
    icon = ":white_check_mark:" if accepted else ":no_entry:"
    return f"{icon} {message}"


def reject_intro(rollout_id: int, gate_id: int, patchset_hash: str) -> str:
    return (
        f"Rollout #{rollout_id}, gate {gate_id}, patch set "
        f"`{patchset_hash[:12]}`. The rollout stops."
    )


# --- exceptions -------------------------------------------------------------------------

STALE_EXCEPTION_FORM = "This form is stale; run the command again."
EXCEPTION_NEEDS_REASON = "An exception needs a reason."
EXCEPTION_NEEDS_OWNER = "An exception needs an owner."
EXCEPTION_NEEDS_EXPIRY = "An exception needs an expiry date."
EXCEPTION_TITLE = "Grant an exception"
EXCEPTION_SUBMIT = "Grant"
EXCEPTION_REASON_LABEL = "Reason (goes on the Jira ticket)"
EXCEPTION_OWNER_LABEL = "Owner (accountable until it expires)"
EXCEPTION_EXPIRY_LABEL = "Expires at the end of"


def not_a_date(day: str) -> str:
    return f"{day!r} is not a date."


def exception_intro(what: str, max_days: int) -> str:
    return (
        f"Leave {what} out of patch rollouts until the expiry (at most "
        f"{max_days} days). A Jira ticket is filed for it."
    )


def exception_granted(exception_id: int, scope: str, expires_at: dt.datetime, owner: str) -> str:
    return (
        f":white_check_mark: Exception #{exception_id} granted for {scope} until "
        f"{expires_at:%Y-%m-%d %H:%M} UTC, owner <@{owner}>; its Jira ticket "
        "is filed by the leader."
    )

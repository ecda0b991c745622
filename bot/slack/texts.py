"""What the Slack face says to people: ephemeral replies, refusals and modal texts.

Handlers and block builders take their sentences from here, so the wording of the face
is read (and changed) in one place. Tests assert some of these texts word for word.
"""

from __future__ import annotations

import datetime as dt

from workflows.notify import mrkdwn

# --- every feature ----------------------------------------------------------------------

UNKNOWN_BUTTON = "This button is not one PatchGate understands."
CANCEL = "Cancel"


def refused(reason: object) -> str:
    """A request PatchGate refused, in the refusal's own words (which may hold what
    the person typed: made inert in mrkdwn, as every typed word the face echoes)."""
    return f":warning: {mrkdwn(reason)}"


def went_wrong(ref: str) -> str:
    """A handler failed; ``ref`` finds its traceback in the log."""
    return f":warning: Something went wrong (reference `{ref}`)."


# --- /patch -----------------------------------------------------------------------------


def usage(error: object, usage: str | None) -> str:
    """A /patch command that could not be understood, with its usage line."""
    text = refused(error)
    if usage:
        text += usage_line(usage)
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
    return f"{icon} {message if accepted else mrkdwn(message)}"


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


# --- /patch status, plans, run, pause/resume/abort, approve/reject -----------------------

NO_PLANS = "No plans are loaded."
NONE = "none"
ACTIVE_ROLLOUTS = "*Active rollouts*"
RECENTLY_FINISHED = "*Recently finished*"
TIME_MISSING_AFTER_AT = "a time is missing after --at"
DRY_RUN_AND_AT = "--dry-run and --at do not go together"
REJECTION_NEEDS_REASON_USAGE = "a rejection needs a reason"


def no_rollout(rollout_id: int) -> str:
    return f"Rollout #{rollout_id} does not exist."


def no_rollout_number(digits: str) -> str:
    """A number too large for a rollout id (clipped: it may be thousands of digits)."""
    shown = digits if len(digits) <= 20 else digits[:20] + "…"
    return f"Rollout #{shown} does not exist."


def plan_line(name: str, description: str | None, rings: str) -> str:
    return f"• `{name}` — {description or 'no description'} ({rings})"


def unknown_option(option: str) -> str:
    return f"unknown option {option!r}"


def no_plan(name: str, known: str) -> str:
    return f"There is no plan named `{mrkdwn(name)}` (plans: {known})."


def dry_run(plan: str, layout: str) -> str:
    return f"Dry run of `{plan}` (nothing written):\n```{layout}```"


def no_entry(reason: object) -> str:
    return f":no_entry: {mrkdwn(reason)}"


def rollout_scheduled(number: int, plan: str) -> str:
    return f"Rollout #{number} of `{plan}` scheduled; progress will be posted in its thread."


def control_queued(kind: str, rollout_id: int) -> str:
    return (
        f"{kind.capitalize()} of rollout #{rollout_id} queued; it takes "
        "effect at the next batch boundary."
    )


def usage_line(usage: str) -> str:
    return f"\nUsage: `/patch {usage}`"


# --- /patch freeze, unfreeze, windows, reload, run --at ---------------------------------

TIME_MISSING_AFTER_UNTIL = "a time is missing after `until`"
FREEZE_REASON_AFTER_TIME = "a freeze needs a reason after the time"
FREEZE_NEEDS_REASON = "a freeze needs a reason"
UNTIL_LIFTED = "until lifted"
PATCH_WINDOWS = "*Patch windows*"
NO_WINDOW_AHEAD = "• no window ahead"
NO_PLANS_LOADED = "no plans are loaded"
OPEN_NOW = " — *open now*"


def no_time_in(words: str) -> str:
    return f"cannot read a time in {words!r}"


def unexpected(words: str) -> str:
    return f"unexpected {words!r}"


def until(when: str) -> str:
    return f"until {when}"


def freeze_in_force(freeze_id: int, end: str, reason: str) -> str:
    return (
        f":ice_cube: Change freeze #{freeze_id} in force {end}: {mrkdwn(reason)}. Running "
        "rollouts hold at their next batch boundary; no window opens."
    )


def freeze_lifted(lifted: str) -> str:
    return (
        f"Change freeze lifted ({lifted}); rollouts held by it continue at the leader's next tick."
    )


def no_schedule(plan: str) -> str:
    return f"`{plan}`: no schedule (rollouts start only when asked)"


def window_blocked(frozen: bool, why: str) -> str:
    what = "frozen" if frozen else "blacked out"
    return f" — *{what}* ({mrkdwn(why)})"


def not_an_operator(user_id: str) -> str:
    return f"{user_id} is not an operator (PATCHGATE_OPERATORS)"


def plans_do_not_load(error: object) -> str:
    return f":no_entry: the plans directory does not load:\n```{mrkdwn(error)}```"


def reload_queued(request_id: int, plans: int) -> str:
    return (
        f"Reload request #{request_id} queued ({plans} plans read fine); the leader "
        "re-reads the plans directory at its next tick."
    )


def run_scheduled(plan: str, when: str, window_end: str | None) -> str:
    # No number here: "#N" is a rollout's number everywhere, and a one-off run becomes a
    # rollout (numbered then) only when it starts; until then it may be missed or frozen.
    until = f", window until {window_end}" if window_end is not None else ""
    return (
        f":calendar: One-off run of `{plan}` scheduled for {when}{until}; the leader starts "
        "it then as a new rollout, whose number comes with its first message."
    )


# --- /patch hosts, assess, emergency ------------------------------------------------------

NO_GAPS = "none: every host answered within the facts age limit"
NO_FIXES_PENDING = "No fixes pending on the assessed hosts."
CVE_MISSING = "a CVE id is missing"
PLAN_MISSING_AFTER_PLAN = "a plan name is missing after --plan"


def bad_selector(error: object) -> str:
    return f"bad selector: {error}"


def and_more(count: int) -> str:
    return f" … and {count} more"


def more_gaps(count: int) -> str:
    return f"… and {count} more (`patchgate inventory refresh` lists all)"


def gaps_unreadable(error: object) -> str:
    return f"*Coverage gaps*: the inventory could not be read: {error}"


def gaps_heading(count: int) -> str:
    return f"*Coverage gaps* ({count})"


def hosts_match(count: int, selector: str, gaps: int) -> str:
    summary = f"{count} host(s) match `{mrkdwn(selector)}`"
    return summary + (f"; {gaps} coverage gap(s)" if gaps else "")


def more_hosts(count: int) -> str:
    return f"… and {count} more; `patchgate inventory show` lists them all"


def looking_up_hosts(selector: str) -> str:
    return f":mag: Looking up hosts matching `{mrkdwn(selector)}`…"


def top_out_of_range(top_max: int) -> str:
    return f"--top needs a number from 1 to {top_max}"


def no_assessment(hosts: int, selector: str) -> str:
    return (
        f"No stored assessment for the {hosts} host(s) matching `{mrkdwn(selector)}`; "
        "`patchgate assess --refresh` assesses them."
    )


def top_fixes(shown: int, fixes: int, hosts: int, selector: str) -> str:
    matching = f"matching `{mrkdwn(selector)}`"
    return f"Top {shown} of {fixes} fix(es) on {hosts} assessed host(s) {matching}"


def not_assessed_yet(count: int, names: str) -> str:
    return f"{count} host(s) not assessed yet: {names} (`patchgate assess --refresh`)"


def ranking_assessments(selector: str) -> str:
    return f":mag: Ranking the stored assessments of hosts matching `{mrkdwn(selector)}`…"


def not_a_cve(word: str) -> str:
    return f"{word!r} is not a CVE id (CVE-YYYY-NNNN)"


def name_the_emergency_plan(candidates: str) -> str:
    return (
        "Name the plan with `--plan PLAN` (plans with an emergency profile: "
        f"{candidates or 'none'})."
    )


def no_emergency_profile(plan: str) -> str:
    return f"Plan `{plan}` has no `emergency:` profile."


def nothing_affected(cve: str, assessed: int) -> str:
    return (
        f"No host is affected by {cve} according to the latest assessments "
        f"({assessed} host(s) assessed); nothing started."
    )


def emergency_started(
    number: int, plan: str, cve: str, hosts: int, names: str, packages: str
) -> str:
    return (
        f":rotating_light: Emergency rollout #{number} of `{plan}` for {cve}: "
        f"{hosts} host(s) ({names}), packages {packages}. "
        "Progress will be posted in its thread."
    )


def finding_affected(cve: str) -> str:
    return f":rotating_light: Finding the hosts affected by {cve}…"


# --- /patch exception, report; reading the command ----------------------------------------

NO_TRIGGER = "Slack sent no trigger for a form; try again."
FORM_NOT_OPENED = ":warning: Slack did not open the form; please try again."
HOST_MISSING = "a host is missing"
NO_CHANNEL_FOR_BUNDLE = "Slack named no channel to post the bundle in."
MISSING_ARGUMENT = "missing argument"


def no_plan_named(name: str) -> str:
    return f"no plan named {name!r} (`/patch plans` lists them)"


def missing_after(what: str, option: str) -> str:
    return f"{what} is missing after {option}"


def given_twice(option: str) -> str:
    return f"{option} given twice"


def unknown_framework(framework: str, known: str) -> str:
    return f"unknown framework {framework!r} (one of {known})"


def bundle_queued(name: str, kept_in: object) -> str:
    return (
        f":package: The bundle `{name}` is built (kept in {kept_in}) and is being posted "
        "in this channel; you will be told here once it is, or why not."
    )


def building_bundle(since: dt.datetime, until: dt.datetime) -> str:
    return (
        f":hourglass_flowing_sand: Building the evidence bundle for "
        f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC; "
        "it will be posted in this channel."
    )


def unreadable_command(error: object) -> str:
    return f"cannot read the command: {error} (check your quotes)"


def unknown_subcommand(word: str, known: str) -> str:
    return f"unknown subcommand {word!r}; try one of: {known}"


def not_a_rollout_number(text: str) -> str:
    return f"{text!r} is not a rollout number"


# --- App Home ---------------------------------------------------------------------------

HOME_OPEN_ROLLOUTS = "*Open rollouts*\n"
HOME_WAITING = "*Gates waiting for you*\n"
HOME_FINISHED = "*Last five finished*\n"
HOME_UNDELIVERED = "*Undelivered messages* (`patchgate outbox retry ID`)\n"


def fleet_coverage(patched: int, total: int, days: int, percent: str) -> str:
    return (
        f"*Fleet coverage*: {patched} of {total} hosts patched in the last {days} days ({percent})"
    )

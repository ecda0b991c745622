"""Which events open, comment on and resolve Jira tickets; PatchGate's ticket memory.

Everything here runs inside the caller's transaction and only writes rows: a ``tickets``
row (the memory) and outbox rows on topic :data:`TOPIC`, which the Jira deliverer
(``integrations/jira.py``) carries out. Rules:

- **One open ticket per subject and cause.** The subject is a host name (or
  ``plan:NAME`` for a rejected gate). A repeat while a ticket is open becomes a comment
  on it. The Jira deliverer falls back to a JQL search on the host and cause labels, so
  a ticket made outside PatchGate's knowledge is commented on too.
- **Causes.** A host ending ``failed`` (patch-failed), ``unhealthy`` (health-failed),
  ``unreachable``; an automatic rollback (``rolled_back`` / ``rollback_failed``) is a
  comment on the host run's ticket when it already has one, otherwise a ticket of its
  own (a healthy host rolled back with its ring); a rejected gate when the plan says
  ``jira.ticket_on_reject``; every exception (one ticket each, never merged).
- **Resolve on fix.** A host ending ``healthy`` resolves its open host tickets: a
  comment, then the configured transition (looked up by name by the deliverer).
- Comment and resolve rows name the create row as their outbox parent, so they wait
  for the key and die with it.
- :func:`sync` (called from the engine's tick) copies delivered keys back into the
  memory, the host runs and the exceptions, and posts the key in the rollout thread.

Outbox rows on this topic carry no ``rollout_id``: tickets are ordered among
themselves by parent keys and never hold up a rollout's Slack thread while Jira is down.

``_text`` says what a ticket says, ``_rows`` keeps the memory and writes the outbox rows,
``_policy`` decides which events file, comment or resolve, ``_sync`` learns Jira's answers.
"""

from workflows.tickets._change import change_spec, describe, mirror
from workflows.tickets._change_votes import TicketVote, change_ticket, claim, vote_from_ticket
from workflows.tickets._policy import (
    FIXED_BY_PATCHING,
    note_no_open_tickets,
    on_engine_gave_up,
    on_gate_rejected,
    on_host_state,
)
from workflows.tickets._rows import (
    TOPIC,
    adopt,
    comment,
    file_or_comment,
    open_ticket,
    resolve,
    tickets_for,
)
from workflows.tickets._sync import refresh_alert, ring_tickets, sync
from workflows.tickets._text import (
    OUTPUT_LINES,
    Cause,
    HostRisk,
    host_advisories,
    host_risk,
    host_ticket_text,
    idempotency_label,
    label,
    labels_for,
    redact,
    refine_severity,
    severity_for,
)

__all__ = [
    "FIXED_BY_PATCHING",
    "OUTPUT_LINES",
    "TOPIC",
    "Cause",
    "HostRisk",
    "TicketVote",
    "adopt",
    "change_spec",
    "change_ticket",
    "claim",
    "comment",
    "describe",
    "file_or_comment",
    "host_advisories",
    "host_risk",
    "host_ticket_text",
    "idempotency_label",
    "label",
    "labels_for",
    "mirror",
    "note_no_open_tickets",
    "on_engine_gave_up",
    "on_gate_rejected",
    "on_host_state",
    "open_ticket",
    "redact",
    "refine_severity",
    "refresh_alert",
    "resolve",
    "ring_tickets",
    "severity_for",
    "sync",
    "tickets_for",
    "vote_from_ticket",
]

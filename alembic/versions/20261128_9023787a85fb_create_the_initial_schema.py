"""Create the initial schema.

Revision ID: 9023787a85fb
Revises:
Create Date: 2026-11-28 18:39:25.204614

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "9023787a85fb"
down_revision: str | tuple[str, ...] | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=False),
        sa.Column("current", sa.String(length=255), nullable=True),
        sa.Column("candidate", sa.String(length=255), nullable=False),
        sa.Column("advisories", sa.JSON(), nullable=False),
        sa.Column("cves", sa.JSON(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("cvss", sa.Double(), nullable=True),
        sa.Column("known_exploited", sa.Boolean(), nullable=False),
        sa.Column("security", sa.Boolean(), nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=True),
        sa.Column("risk", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessments")),
    )
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assessments_host"), ["host"], unique=False)

    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prev_seq", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archive_name", sa.String(length=255), nullable=False),
        sa.Column("archive_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_checkpoints_seq")),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "due_times",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("plan_name", sa.String(length=128), nullable=True),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("gate_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('window', 'run', 'reminder')", name=op.f("ck_due_times_kind")),
        sa.CheckConstraint(
            "state IN ('pending', 'done', 'cancelled')", name=op.f("ck_due_times_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_due_times")),
        sa.UniqueConstraint("key", name=op.f("uq_due_times_key")),
    )
    with op.batch_alter_table("due_times", schema=None) as batch_op:
        batch_op.create_index("ix_due_times_state_due", ["state", "due_at"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_at_id", ["at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_rollout_id"), ["rollout_id"], unique=False)

    op.create_table(
        "exceptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_name", sa.String(length=255), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=True),
        sa.Column("cve", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("lapsed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticket_key", sa.String(length=64), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exceptions")),
    )
    with op.batch_alter_table("exceptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exceptions_host_name"), ["host_name"], unique=False)

    op.create_table(
        "fix_detections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=False),
        sa.Column("current", sa.String(length=255), nullable=True),
        sa.Column("candidate", sa.String(length=255), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("cvss", sa.Double(), nullable=True),
        sa.Column("published", sa.DateTime(timezone=True), nullable=True),
        sa.Column("advisories", sa.JSON(), nullable=False),
        sa.Column("cves", sa.JSON(), nullable=False),
        sa.Column("first_detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fix_detections")),
        sa.UniqueConstraint("host", "package", "candidate", name="uq_fix_detections_host_fix"),
    )
    with op.batch_alter_table("fix_detections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fix_detections_first_detected_at"), ["first_detected_at"], unique=False
        )

    op.create_table(
        "freezes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freezes")),
    )
    op.create_table(
        "host_assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fixes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_assessments")),
    )
    with op.batch_alter_table("host_assessments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_host_assessments_assessed_at"), ["assessed_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_host_assessments_host"), ["host"], unique=False)

    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("criticality", sa.String(length=16), nullable=True),
        sa.Column("internet_facing", sa.Boolean(), nullable=False),
        sa.Column("os_id", sa.String(length=64), nullable=True),
        sa.Column("os_version", sa.String(length=64), nullable=True),
        sa.Column("arch", sa.String(length=32), nullable=True),
        sa.Column("kernel", sa.String(length=128), nullable=True),
        sa.Column("package_manager", sa.String(length=16), nullable=True),
        sa.Column("boot_id", sa.String(length=64), nullable=True),
        sa.Column("reboot_required", sa.Boolean(), nullable=True),
        sa.Column("reachable", sa.Boolean(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("facts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_patched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("name", name=op.f("uq_hosts_name")),
    )
    op.create_table(
        "known_host_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("key_type", sa.String(length=64), nullable=False),
        sa.Column("key_base64", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_host_keys")),
        sa.UniqueConstraint("name", "key_type", name=op.f("uq_known_host_keys_name")),
    )
    with op.batch_alter_table("known_host_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_known_host_keys_name"), ["name"], unique=False)

    op.create_table(
        "leader_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leader_state")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("parent_key", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'dead')", name=op.f("ck_outbox_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_key")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_rollout_id"), ["rollout_id"], unique=False)
        batch_op.create_index("ix_outbox_state_next", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "plan_schedules",
        sa.Column("plan_name", sa.String(length=128), nullable=False),
        sa.Column("plan_hash", sa.String(length=64), nullable=False),
        sa.Column("plan_snapshot", sa.JSON(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_window_start", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("plan_name", name=op.f("pk_plan_schedules")),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_name", sa.String(length=128), nullable=False),
        sa.Column("plan_hash", sa.String(length=64), nullable=False),
        sa.Column("plan_snapshot", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("hold_reason", sa.Text(), nullable=True),
        sa.Column("hold_by", sa.String(length=64), nullable=True),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("abort_requested_by", sa.String(length=64), nullable=True),
        sa.Column("abort_reason", sa.Text(), nullable=True),
        sa.Column("patchset", sa.JSON(), nullable=True),
        sa.Column("patchset_hash", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('scheduled', 'waiting_window', 'assessing', 'running', 'awaiting_approval', 'succeeded', 'failed', 'rolled_back', 'rejected', 'aborted')",
            name=op.f("ck_rollouts_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.create_index("ix_rollouts_state", ["state"], unique=False)

    op.create_table(
        "slack_seen_signatures",
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_slack_seen_signatures")),
    )
    with op.batch_alter_table("slack_seen_signatures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_slack_seen_signatures_seen_at"), ["seen_at"], unique=False
        )

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("outbox_key", sa.String(length=255), nullable=False),
        sa.Column("resolve_outbox_key", sa.String(length=255), nullable=True),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("host_run_id", sa.Integer(), nullable=True),
        sa.Column("exception_id", sa.Integer(), nullable=True),
        sa.Column("resolved_rollout_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('open', 'resolving', 'resolved')", name=op.f("ck_tickets_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("outbox_key", name=op.f("uq_tickets_outbox_key")),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tickets_exception_id"), ["exception_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tickets_rollout_id"), ["rollout_id"], unique=False)
        batch_op.create_index(
            "ix_tickets_subject_cause_state", ["subject", "cause", "state"], unique=False
        )

    op.create_table(
        "host_leases",
        sa.Column("host_name", sa.String(length=255), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_host_leases_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("host_name", name=op.f("pk_host_leases")),
    )
    with op.batch_alter_table("host_leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_host_leases_rollout_id"), ["rollout_id"], unique=False)

    op.create_table(
        "requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('start', 'pause', 'resume', 'abort', 'reload')", name=op.f("ck_requests_kind")
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'done', 'refused')", name=op.f("ck_requests_state")
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_requests_rollout_id_rollouts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index("ix_requests_state", ["state"], unique=False)

    op.create_table(
        "rings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("host_count", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("batch_count", sa.Integer(), nullable=False),
        sa.Column("failure_budget", sa.Integer(), nullable=False),
        sa.Column("next_batch", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'patching', 'verifying', 'done', 'failed', 'rolling_back', 'rolled_back', 'rejected', 'skipped')",
            name=op.f("ck_rings_state"),
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_rings_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rings")),
        sa.UniqueConstraint("rollout_id", "position", name="uq_rings_rollout_position"),
    )
    with op.batch_alter_table("rings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rings_rollout_id"), ["rollout_id"], unique=False)

    op.create_table(
        "gates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("ring_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("patchset_hash", sa.String(length=64), nullable=True),
        sa.Column("untested_platforms", sa.JSON(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("soak_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('auto', 'approval')", name=op.f("ck_gates_kind")),
        sa.CheckConstraint(
            "state IN ('open', 'approved', 'rejected', 'expired')", name=op.f("ck_gates_state")
        ),
        sa.ForeignKeyConstraint(
            ["ring_id"], ["rings.id"], name=op.f("fk_gates_ring_id_rings"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_gates_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gates")),
        sa.UniqueConstraint("ring_id", name=op.f("uq_gates_ring_id")),
    )
    with op.batch_alter_table("gates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gates_rollout_id"), ["rollout_id"], unique=False)

    op.create_table(
        "host_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("ring_id", sa.Integer(), nullable=False),
        sa.Column("host_name", sa.String(length=255), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(length=128), nullable=True),
        sa.Column("failure", sa.Boolean(), nullable=False),
        sa.Column("op_id", sa.String(length=64), nullable=True),
        sa.Column("before_versions", sa.JSON(), nullable=True),
        sa.Column("after_versions", sa.JSON(), nullable=True),
        sa.Column("boot_id_before", sa.String(length=64), nullable=True),
        sa.Column("reboot_required", sa.Boolean(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("output_tail", sa.Text(), nullable=True),
        sa.Column("health", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("ticket_key", sa.String(length=64), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("held_packages", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'applying', 'applied', 'rebooting', 'healthy', 'failed', 'unhealthy', 'unreachable', 'rolling_back', 'rolled_back', 'rollback_failed', 'excepted', 'skipped')",
            name=op.f("ck_host_runs_state"),
        ),
        sa.ForeignKeyConstraint(
            ["ring_id"], ["rings.id"], name=op.f("fk_host_runs_ring_id_rings"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_host_runs_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_host_runs_ticket_id_tickets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_runs")),
        sa.UniqueConstraint("rollout_id", "host_name", name="uq_host_runs_rollout_host"),
    )
    with op.batch_alter_table("host_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_host_runs_host_name"), ["host_name"], unique=False)
        batch_op.create_index("ix_host_runs_ring_state", ["ring_id", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_host_runs_rollout_id"), ["rollout_id"], unique=False)

    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gate_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("patchset_hash", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("decision IN ('approve', 'reject')", name=op.f("ck_approvals_decision")),
        sa.ForeignKeyConstraint(
            ["gate_id"], ["gates.id"], name=op.f("fk_approvals_gate_id_gates"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint("gate_id", "user_id", name="uq_approvals_gate_user"),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approvals_gate_id"), ["gate_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approvals_gate_id"))

    op.drop_table("approvals")
    with op.batch_alter_table("host_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_host_runs_rollout_id"))
        batch_op.drop_index("ix_host_runs_ring_state")
        batch_op.drop_index(batch_op.f("ix_host_runs_host_name"))

    op.drop_table("host_runs")
    with op.batch_alter_table("gates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gates_rollout_id"))

    op.drop_table("gates")
    with op.batch_alter_table("rings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rings_rollout_id"))

    op.drop_table("rings")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_state")

    op.drop_table("requests")
    with op.batch_alter_table("host_leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_host_leases_rollout_id"))

    op.drop_table("host_leases")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_subject_cause_state")
        batch_op.drop_index(batch_op.f("ix_tickets_rollout_id"))
        batch_op.drop_index(batch_op.f("ix_tickets_exception_id"))

    op.drop_table("tickets")
    with op.batch_alter_table("slack_seen_signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_seen_signatures_seen_at"))

    op.drop_table("slack_seen_signatures")
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.drop_index("ix_rollouts_state")

    op.drop_table("rollouts")
    op.drop_table("plan_schedules")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_state_next")
        batch_op.drop_index(batch_op.f("ix_outbox_rollout_id"))

    op.drop_table("outbox")
    op.drop_table("leader_state")
    with op.batch_alter_table("known_host_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_known_host_keys_name"))

    op.drop_table("known_host_keys")
    op.drop_table("hosts")
    with op.batch_alter_table("host_assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_host_assessments_host"))
        batch_op.drop_index(batch_op.f("ix_host_assessments_assessed_at"))

    op.drop_table("host_assessments")
    op.drop_table("freezes")
    with op.batch_alter_table("fix_detections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fix_detections_first_detected_at"))

    op.drop_table("fix_detections")
    with op.batch_alter_table("exceptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exceptions_host_name"))

    op.drop_table("exceptions")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_rollout_id"))
        batch_op.drop_index(batch_op.f("ix_events_kind"))
        batch_op.drop_index("ix_events_at_id")

    op.drop_table("events")
    with op.batch_alter_table("due_times", schema=None) as batch_op:
        batch_op.drop_index("ix_due_times_state_due")

    op.drop_table("due_times")
    op.drop_table("audit_head")
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assessments_host"))

    op.drop_table("assessments")

"""Remember each rollout's Jira change ticket, the Jira events already acted on, and the
exceptions requested in Jira.

Revision ID: 9d2f4b7a1c30
Revises: c4e8a1f09d16
Create Date: 2026-12-07 12:00:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "9d2f4b7a1c30"
down_revision: str | tuple[str, ...] | None = "c4e8a1f09d16"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "change_records",
        sa.Column("rollout_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.Integer(), nullable=False),
        sa.Column("shown_hash", sa.String(length=64), nullable=True),
        sa.Column("shown_gate_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rollout_id", name=op.f("pk_change_records")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_change_records_ticket_id")),
    )
    op.create_table(
        "jira_events_seen",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jira_events_seen")),
        sa.UniqueConstraint("source", name=op.f("uq_jira_events_seen_source")),
    )
    op.create_table(
        "exception_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("package", sa.String(length=255), nullable=True),
        sa.Column("cve", sa.String(length=32), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_by", sa.String(length=255), nullable=False),
        sa.Column("requester", sa.String(length=64), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("exception_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('requested', 'granted', 'rejected', 'invalid')",
            name=op.f("ck_exception_requests_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exception_requests")),
        sa.UniqueConstraint("issue_key", name=op.f("uq_exception_requests_issue_key")),
    )


def downgrade() -> None:
    op.drop_table("exception_requests")
    op.drop_table("jira_events_seen")
    op.drop_table("change_records")

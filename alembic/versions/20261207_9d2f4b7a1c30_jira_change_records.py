"""Remember each rollout's Jira change ticket and the Jira events already acted on.

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


def downgrade() -> None:
    op.drop_table("jira_events_seen")
    op.drop_table("change_records")

"""Backend jobs (the batch backends' jobs, keyed for idempotency) and the backend of each host run.

Revision ID: b7d2e4f6a8c1
Revises: 9d2f4b7a1c30
Create Date: 2026-12-07 12:10:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "b7d2e4f6a8c1"
down_revision: str | tuple[str, ...] | None = "9d2f4b7a1c30"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "backend_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("ring_id", sa.Integer(), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=True),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("job_id", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("tool_state", sa.String(length=64), nullable=True),
        sa.Column("hosts", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('intended', 'submitted', 'done')", name=op.f("ck_backend_jobs_state")
        ),
        sa.CheckConstraint(
            "action IN ('apply', 'rollback', 'reboot')", name=op.f("ck_backend_jobs_action")
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_backend_jobs_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ring_id"], ["rings.id"], name=op.f("fk_backend_jobs_ring_id_rings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backend_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_backend_jobs_key")),
    )
    with op.batch_alter_table("backend_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backend_jobs_rollout_id"), ["rollout_id"], unique=False)
    with op.batch_alter_table("host_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backend", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("host_runs", schema=None) as batch_op:
        batch_op.drop_column("backend")
    with op.batch_alter_table("backend_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backend_jobs_rollout_id"))
    op.drop_table("backend_jobs")

"""Keep a host's OS family and build, a vendor update's identity on its assessment, and
the pinned set's update identities on the rollout (Windows and macOS hosts, issue 21).

Revision ID: d5f1a2b3c4e6
Revises: b7d2e4f6a8c1
Create Date: 2026-12-07 16:00:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "d5f1a2b3c4e6"
down_revision: str | tuple[str, ...] | None = "b7d2e4f6a8c1"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("os_family", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("build", sa.String(length=64), nullable=True))
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity", sa.JSON(), nullable=True))
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("patchset_updates", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.drop_column("patchset_updates")
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_column("identity")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_column("build")
        batch_op.drop_column("os_family")

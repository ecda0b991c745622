"""Keep the CVE an emergency rollout was started for, so every message can label it.

Revision ID: e3a9c1d4b7f2
Revises: 7c4e1a9b2d05
Create Date: 2026-12-07 09:00:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "e3a9c1d4b7f2"
down_revision: str | tuple[str, ...] | None = "7c4e1a9b2d05"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("emergency_cve", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.drop_column("emergency_cve")

"""Remember when a fix closed by a host run was found missing again (reopened).

Revision ID: a7c4e2f19b35
Revises: e3a9c1d4b7f2
Create Date: 2026-12-07 09:10:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "a7c4e2f19b35"
down_revision: str | tuple[str, ...] | None = "e3a9c1d4b7f2"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fix_detections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reopened_at", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fix_detections", schema=None) as batch_op:
        batch_op.drop_column("reopened_at")

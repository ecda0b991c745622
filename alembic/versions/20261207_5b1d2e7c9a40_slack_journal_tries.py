"""Count the tries of a journaled Slack request, so one that cannot be processed goes dead.

Revision ID: 5b1d2e7c9a40
Revises: 9023787a85fb
Create Date: 2026-12-07 07:20:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "5b1d2e7c9a40"
down_revision: str | tuple[str, ...] | None = "9023787a85fb"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("slack_seen_signatures", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tries", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("slack_seen_signatures", schema=None) as batch_op:
        batch_op.drop_column("tries")

"""Keyed audit chain: the key id of each event's MAC, and the head's own MAC.

Additive: existing events keep ``key_id`` NULL (their ``hash`` is the unkeyed SHA-256
they were written with); events appended with PATCHGATE_AUDIT_KEY carry the key's id
and ``hash`` holds HMAC-SHA256(key, prev + body). The head's ``mac`` (with ``key_id``)
signs its count, last event id and last hash, so a head moved back is caught.

Revision ID: c4e81a7f2d15
Revises: 5b1d2e7c9a40
Create Date: 2026-12-07 09:00:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "c4e81a7f2d15"
down_revision: str | tuple[str, ...] | None = "5b1d2e7c9a40"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.drop_column("mac")
        batch_op.drop_column("key_id")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("key_id")

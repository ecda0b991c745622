"""Add personal API tokens: the CLI decides through serve's HTTP API as one Slack user.

Revision ID: 7c4e1a9b2d05
Revises: c4e81a7f2d15
Create Date: 2026-12-07 09:00:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "7c4e1a9b2d05"
down_revision: str | tuple[str, ...] | None = "c4e81a7f2d15"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=255), nullable=True),
        sa.CheckConstraint("length(secret_hash) = 64", name=op.f("ck_api_tokens_secret_hash")),
        sa.CheckConstraint("expires_at > created_at", name=op.f("ck_api_tokens_lifetime")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("public_id", name=op.f("uq_api_tokens_public_id")),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")

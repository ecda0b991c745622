"""Hosts settled up to date, each host's share of the pinned set and its left-over updates, and rollouts that succeeded with failures.

Revision ID: c4e8a1f09d16
Revises: a7c4e2f19b35
Create Date: 2026-12-07 09:00:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = "c4e8a1f09d16"
down_revision: str | tuple[str, ...] | None = "a7c4e2f19b35"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

_ROLLOUT_OLD = (
    "'scheduled', 'waiting_window', 'assessing', 'running', 'awaiting_approval', "
    "'succeeded', 'failed', 'rolled_back', 'rejected', 'aborted'"
)
_ROLLOUT_NEW = (
    "'scheduled', 'waiting_window', 'assessing', 'running', 'awaiting_approval', "
    "'succeeded', 'succeeded_with_failures', 'failed', 'rolled_back', 'rejected', 'aborted'"
)
_HOST_OLD = (
    "'pending', 'applying', 'applied', 'rebooting', 'healthy', 'failed', 'unhealthy', "
    "'unreachable', 'rolling_back', 'rolled_back', 'rollback_failed', 'excepted', 'skipped'"
)
_HOST_NEW = _HOST_OLD + ", 'up_to_date'"


def _check(table: str, listed: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(op.f(f"ck_{table}_state"), type_="check")
        batch_op.create_check_constraint(op.f(f"ck_{table}_state"), f"state IN ({listed})")


def upgrade() -> None:
    _check("rollouts", _ROLLOUT_NEW)
    _check("host_runs", _HOST_NEW)
    with op.batch_alter_table("host_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("packages", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("left_over", sa.JSON(), nullable=True))


def downgrade() -> None:
    # The new states have no older equivalent: a rollout that succeeded with failures is
    # recorded as succeeded (its failed hosts keep their states), an up-to-date host as
    # skipped (it was never patched by that rollout).
    op.execute("UPDATE rollouts SET state = 'succeeded' WHERE state = 'succeeded_with_failures'")
    op.execute("UPDATE host_runs SET state = 'skipped' WHERE state = 'up_to_date'")
    with op.batch_alter_table("host_runs", schema=None) as batch_op:
        batch_op.drop_column("left_over")
        batch_op.drop_column("packages")
    _check("host_runs", _HOST_OLD)
    _check("rollouts", _ROLLOUT_OLD)

"""per-tenant limits and their counters; an index of each tenant's active jobs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-20 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.create_table(
        "tenant_limits",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("max_priority", sa.Integer(), nullable=True),
        sa.Column("jobs_per_minute", sa.Float(), nullable=True),
        sa.Column("jobs_burst", sa.Integer(), nullable=True),
        sa.Column("max_active_jobs", sa.Integer(), nullable=True),
        sa.Column("batch_items_per_day", sa.Integer(), nullable=True),
        sa.Column("max_job_tokens", sa.BigInteger(), nullable=True),
        sa.Column("max_job_calls", sa.Integer(), nullable=True),
        sa.Column("max_job_cost_usd", sa.Float(), nullable=True),
        sa.Column("max_job_seconds", sa.Float(), nullable=True),
        sa.Column("spend_per_day_usd", sa.Float(), nullable=True),
        sa.Column("max_schedules", sa.Integer(), nullable=True),
        sa.Column("max_datasets", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "tenant_counters",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("stamp", sa.Float(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "name"),
    )
    op.create_index(
        "ix_jobs_tenant_active",
        "jobs",
        ["tenant_id"],
        unique=False,
        postgresql_where=sa.text(ACTIVE),
        sqlite_where=sa.text(ACTIVE),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_active", table_name="jobs")
    op.drop_table("tenant_counters")
    op.drop_table("tenant_limits")

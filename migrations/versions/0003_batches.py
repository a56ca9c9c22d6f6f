"""batches, datasets, batch item columns on jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 15:34:04.841589
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


HELD = "held AND status = 'queued'"
IN_FLIGHT = "batch_id IS NOT NULL AND NOT held AND status IN ('queued', 'running')"


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("dataset", sa.String(length=200), nullable=True),
        sa.Column("source_filter", _json(), nullable=True),
        sa.Column("defaults", _json(), nullable=False),
        sa.Column("budget", _json(), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("rejected_count", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.String(length=36), nullable=True),
        sa.Column("fire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_fed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("schedule_id", "fire_time", name="uq_batches_schedule_fire_time"),
    )
    op.create_index(op.f("ix_batches_schedule_id"), "batches", ["schedule_id"], unique=False)
    op.create_index("ix_batches_status", "batches", ["status"], unique=False)
    op.create_index(
        "ix_batches_tenant_created", "batches", ["tenant_id", "created_at", "id"], unique=False
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_datasets_tenant_name"),
    )
    op.create_index(
        "ix_datasets_tenant_created", "datasets", ["tenant_id", "created_at", "id"], unique=False
    )
    op.create_table(
        "dataset_items",
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item_key", sa.String(length=200), nullable=True),
        sa.Column("problem", _json(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset_id", "position"),
    )
    op.add_column("jobs", sa.Column("item_index", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("custom_id", sa.String(length=200), nullable=True))
    op.add_column("jobs", sa.Column("original_job_id", sa.String(length=36), nullable=True))
    op.add_column(
        "jobs", sa.Column("held", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.create_index(
        "ix_jobs_batch_held",
        "jobs",
        ["batch_id", "priority", "item_index"],
        unique=False,
        postgresql_where=sa.text(HELD),
        sqlite_where=sa.text(HELD),
    )
    op.create_index(
        "ix_jobs_batch_in_flight",
        "jobs",
        ["tenant_id", "batch_id"],
        unique=False,
        postgresql_where=sa.text(IN_FLIGHT),
        sqlite_where=sa.text(IN_FLIGHT),
    )
    op.create_index("uq_jobs_batch_item", "jobs", ["batch_id", "item_index"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_jobs_batch_item", table_name="jobs")
    op.drop_index("ix_jobs_batch_in_flight", table_name="jobs")
    op.drop_index("ix_jobs_batch_held", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("held")
        batch.drop_column("original_job_id")
        batch.drop_column("custom_id")
        batch.drop_column("item_index")
    op.drop_table("dataset_items")
    op.drop_index("ix_datasets_tenant_created", table_name="datasets")
    op.drop_table("datasets")
    op.drop_index("ix_batches_tenant_created", table_name="batches")
    op.drop_index("ix_batches_status", table_name="batches")
    op.drop_index(op.f("ix_batches_schedule_id"), table_name="batches")
    op.drop_table("batches")

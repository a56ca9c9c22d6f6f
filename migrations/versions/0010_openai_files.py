"""The OpenAI-compatible surface: its files and batches; two columns on jobs

Revision ID: 0010_openai_files
Revises: 0009
Create Date: 2027-01-05 10:00:00.000000

``openai_files`` holds uploaded batch inputs and the output and error files of batches,
``openai_batches`` the Batch API's own fields beside the native batch that runs the
lines. ``jobs.webhook_format`` picks OpenAI-shaped webhook events for a job and
``jobs.openai`` keeps what an OpenAI-shaped request said that the job's columns do not.
Existing rows are unchanged (both columns null).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_openai_files"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("webhook_format", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("openai", JSON, nullable=True))
    op.create_table(
        "openai_files",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_openai_files_tenant_created", "openai_files", ["tenant_id", "created_at", "id"]
    )
    op.create_table(
        "openai_batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("input_file_id", sa.String(length=36), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("completion_window", sa.String(length=16), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("line_errors", JSON, nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("output_file_id", sa.String(length=36), nullable=True),
        sa.Column("error_file_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("batch_id"),
    )
    op.create_index(
        "ix_openai_batches_tenant_created", "openai_batches", ["tenant_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_openai_batches_tenant_created", table_name="openai_batches")
    op.drop_table("openai_batches")
    op.drop_index("ix_openai_files_tenant_created", table_name="openai_files")
    op.drop_table("openai_files")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("openai")
        batch.drop_column("webhook_format")

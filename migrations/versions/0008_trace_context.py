"""jobs.trace_context: the W3C trace context of a job's submission

Revision ID: 0008_trace_context
Revises: 0007
Create Date: 2026-12-22 10:00:00.000000

With tracing on, the API stores the trace context of the span that submitted a job, so
each slice of the job, on any worker, joins the submission's trace. Jobs stored before
this revision (or with tracing off) have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_trace_context"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json_type = sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("trace_context", json_type, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("trace_context")

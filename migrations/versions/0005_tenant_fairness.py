"""indexes for fair shares between tenants (a tenant's waiting and held jobs)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 12:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "status = 'queued' AND NOT held AND lease_owner IS NULL"
HELD = "held AND batch_id IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_jobs_tenant_waiting",
        "jobs",
        ["tenant_id"],
        unique=False,
        postgresql_where=sa.text(WAITING),
        sqlite_where=sa.text(WAITING),
    )
    op.create_index(
        "ix_jobs_tenant_held",
        "jobs",
        ["tenant_id", "priority", "created_at"],
        unique=False,
        postgresql_where=sa.text(HELD),
        sqlite_where=sa.text(HELD),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_held", table_name="jobs")
    op.drop_index("ix_jobs_tenant_waiting", table_name="jobs")

"""API keys: scopes, a name, the time of last use

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00.000000

Keys made before this revision get every scope (``admin submit read``), so none of them
stops working. The columns are all on ``api_keys``; nothing else changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALL_SCOPES = "admin submit read"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column(
                "scopes",
                sa.String(length=64),
                nullable=False,
                server_default=sa.text(f"'{ALL_SCOPES}'"),
            )
        )
        batch.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("name")
        batch.drop_column("scopes")

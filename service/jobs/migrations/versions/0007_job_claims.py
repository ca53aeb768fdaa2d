"""Graceful shutdowns cost jobs no attempt: interruptions apart from attempts, and each claim's history.

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as table:
        table.add_column(sa.Column("interruptions", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("claims", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as table:
        table.drop_column("claims")
        table.drop_column("interruptions")

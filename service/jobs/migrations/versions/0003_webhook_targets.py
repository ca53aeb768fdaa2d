"""Webhooks: the receiver each delivery goes to (deliveries are limited per receiver) and when the
retries gave up.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as table:
        table.add_column(sa.Column("webhook_target", sa.String(300)))
        table.add_column(sa.Column("webhook_given_up_at", sa.DateTime()))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as table:
        table.drop_column("webhook_given_up_at")
        table.drop_column("webhook_target")

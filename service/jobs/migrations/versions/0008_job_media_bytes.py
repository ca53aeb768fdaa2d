"""Each job's upload size, which a key's storage quota counts.

Revision ID: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as table:
        table.add_column(sa.Column("media_bytes", sa.BigInteger()))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as table:
        table.drop_column("media_bytes")

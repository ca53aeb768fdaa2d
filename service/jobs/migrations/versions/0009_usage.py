"""What each key used per UTC day: GET /v1/usage and the daily media quota.

Revision ID: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("images", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("faces", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("media_seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("jobs", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("study_sessions", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("usage")

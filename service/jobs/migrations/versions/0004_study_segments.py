"""Studies: respondents' own answers on each session (segments), a category (norms), and study events
(a callback URL, a target number of sessions, and when the study became ready).

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("study_sessions") as table:
        table.add_column(sa.Column("attributes", sa.JSON()))
    with op.batch_alter_table("studies") as table:
        table.add_column(sa.Column("category", sa.String(64)))
        table.add_column(sa.Column("callback_url", sa.String(2048)))
        table.add_column(sa.Column("target_sessions", sa.Integer()))
        table.add_column(sa.Column("ready_at", sa.DateTime()))
        table.create_index("ix_studies_owner_category", ["owner", "category"])


def downgrade() -> None:
    with op.batch_alter_table("studies") as table:
        table.drop_index("ix_studies_owner_category")
        table.drop_column("ready_at")
        table.drop_column("target_sessions")
        table.drop_column("callback_url")
        table.drop_column("category")
    with op.batch_alter_table("study_sessions") as table:
        table.drop_column("attributes")

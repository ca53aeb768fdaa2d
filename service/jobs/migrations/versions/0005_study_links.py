"""Ad tests from one link: the stimulus kept with its study, participant links, and where each
session came from.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STIMULUS = (
    ("stimulus_media", sa.String(512)),
    ("stimulus_bytes", sa.Integer()),
    ("stimulus_type", sa.String(64)),
    ("stimulus_width", sa.Integer()),
    ("stimulus_height", sa.Integer()),
    ("stimulus_clip_s", sa.Float()),
)
SESSION = (
    ("source", sa.String(8)),
    ("mode", sa.String(16)),
    ("link_id", sa.String(32)),
    ("visible_share", sa.Float()),
    ("lead_in_s", sa.Float()),
)


def upgrade() -> None:
    with op.batch_alter_table("studies") as table:
        for name, kind in STIMULUS:
            table.add_column(sa.Column(name, kind))
    with op.batch_alter_table("study_sessions") as table:
        for name, kind in SESSION:
            table.add_column(sa.Column(name, kind))
        table.create_index("ix_study_sessions_link_id", ["link_id"])
    op.create_table(
        "study_links",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("return_url", sa.String(2048)),
        sa.Column("max_sessions", sa.Integer()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime()),
        sa.Column("opened", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("declined", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("screened_out", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("errors", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_study_links_study_id", "study_links", ["study_id"])


def downgrade() -> None:
    op.drop_index("ix_study_links_study_id", "study_links")
    op.drop_table("study_links")
    with op.batch_alter_table("study_sessions") as table:
        table.drop_index("ix_study_sessions_link_id")
        for name, _ in reversed(SESSION):
            table.drop_column(name)
    with op.batch_alter_table("studies") as table:
        for name, _ in reversed(STIMULUS):
            table.drop_column(name)

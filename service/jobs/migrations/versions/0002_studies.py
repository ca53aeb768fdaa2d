"""Audience studies and their viewers' per-second traces.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("stimulus_duration_s", sa.Float, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("model_name", sa.String(64)),
        sa.Column("model_version", sa.String(64)),
    )
    op.create_index("ix_studies_owner", "studies", ["owner"])
    op.create_index("ix_studies_created_at", "studies", ["created_at"])
    op.create_table(
        "study_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("viewer", sa.String(256)),
        sa.Column("offset_s", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("reason", sa.Text),
        sa.Column("trace", sa.JSON),
    )
    op.create_index("ix_study_sessions_study_id", "study_sessions", ["study_id"])


def downgrade() -> None:
    op.drop_table("study_sessions")
    op.drop_table("studies")

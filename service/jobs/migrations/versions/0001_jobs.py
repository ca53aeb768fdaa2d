"""The job table.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime()  # naive UTC throughout, the same in SQLite and PostgreSQL
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tag", sa.String(256)),
        sa.Column("idempotency_key", sa.String(256)),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("filename", sa.String(255)),
        sa.Column("media", sa.String(512)),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("started_at", tz),
        sa.Column("finished_at", tz),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", tz),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.Column("result", sa.Text),
        sa.Column("callback_url", sa.String(2048)),
        sa.Column("webhook_id", sa.String(64)),
        sa.Column("webhook_event", sa.Text),
        sa.Column("webhook_attempts", sa.Integer, nullable=False),
        sa.Column("webhook_last_status", sa.Integer),
        sa.Column("webhook_next_at", tz),
        sa.Column("webhook_delivered_at", tz),
        sa.UniqueConstraint("owner", "idempotency_key", name="jobs_owner_idempotency_key"),
    )
    for column in ("owner", "status", "created_at", "finished_at", "webhook_next_at"):
        op.create_index(f"ix_jobs_{column}", "jobs", [column])


def downgrade() -> None:
    op.drop_table("jobs")

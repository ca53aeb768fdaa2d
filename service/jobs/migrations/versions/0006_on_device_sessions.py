"""Sessions analysed on the viewer's device: no analysis job, and the frame rate the browser kept; link
modes long enough for "on-device-or-upload".

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("study_links") as table:
        table.alter_column("mode", existing_type=sa.String(16), type_=sa.String(24))
    with op.batch_alter_table("study_sessions") as table:
        table.alter_column("job_id", existing_type=sa.String(32), nullable=True)
        table.add_column(sa.Column("analysed_fps", sa.Float()))


def downgrade() -> None:
    with op.batch_alter_table("study_sessions") as table:
        table.drop_column("analysed_fps")
        table.alter_column("job_id", existing_type=sa.String(32), nullable=False)
    with op.batch_alter_table("study_links") as table:
        table.alter_column("mode", existing_type=sa.String(24), type_=sa.String(16))

"""blobs: a pin per content-addressed blob, so deleting one is a single atomic decision

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_blobs_pinned_at", "blobs", ["pinned_at"])
    # Every blob a row names today gets its pin: only a pinned blob is ever deleted.
    op.execute(
        "INSERT INTO blobs (sha256, pinned_at) "
        "SELECT sha256, CURRENT_TIMESTAMP FROM images UNION SELECT sha256, CURRENT_TIMESTAMP "
        "FROM results"
    )


def downgrade() -> None:
    op.drop_index("ix_blobs_pinned_at", table_name="blobs")
    op.drop_table("blobs")

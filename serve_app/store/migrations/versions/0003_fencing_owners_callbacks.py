"""tasks: lease epoch (fencing), owner (tenants), callback delivery; images: owner; retention
indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("lease_epoch", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("callback_state", sa.String(16), nullable=True))
        batch.add_column(
            sa.Column("callback_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("callback_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("callback_next_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_tasks_owner", "tasks", ["owner"])
    op.create_index("ix_tasks_finished_at", "tasks", ["finished_at"])
    op.create_index("ix_tasks_callback_state", "tasks", ["callback_state"])

    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))
    op.create_index("ix_images_owner", "images", ["owner"])
    op.create_index("ix_images_created_at", "images", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_images_created_at", table_name="images")
    op.drop_index("ix_images_owner", table_name="images")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("owner")
    op.drop_index("ix_tasks_callback_state", table_name="tasks")
    op.drop_index("ix_tasks_finished_at", table_name="tasks")
    op.drop_index("ix_tasks_owner", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        for column in (
            "callback_next_at",
            "callback_error",
            "callback_attempts",
            "callback_state",
            "callback_url",
            "owner",
            "lease_epoch",
        ):
            batch.drop_column(column)

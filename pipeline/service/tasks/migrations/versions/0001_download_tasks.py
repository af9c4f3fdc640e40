"""The download tasks' tables: download_tasks, download_items, user_download_history.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TASK_STATUSES = "('queued', 'preparing', 'downloading', 'paused', 'verifying', 'completed', 'error', 'cancelled')"
ITEM_STATUSES = "('pending', 'downloading', 'paused', 'completed', 'error', 'verifying')"


def _times() -> list[sa.Column]:
    return [sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "download_tasks",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("product_id", sa.String(255), nullable=False),
        sa.Column("version_id", sa.String(255), nullable=False),
        sa.Column("target_path", sa.Text(), nullable=False),
        sa.Column("status", sa.String(50), nullable=False, server_default="queued"),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("total_size_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("downloaded_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        *_times(),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False, server_default="download"),
        sa.Column("from_version_id", sa.String(255), nullable=True),
        sa.Column("queue_order", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.CheckConstraint(f"status IN {TASK_STATUSES}", name="download_tasks_status"),
        sa.CheckConstraint("kind IN ('download', 'update', 'verify')", name="download_tasks_kind"),
    )
    op.create_index("idx_download_tasks_user_status", "download_tasks", ["user_id", "status"])
    op.create_table(
        "download_items",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("download_task_id", sa.Uuid(), sa.ForeignKey("download_tasks.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("relative_path", sa.Text(), nullable=False),
        sa.Column("status", sa.String(50), nullable=False, server_default="pending"),
        sa.Column("downloaded_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("total_size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("expected_hash_sha256", sa.String(64), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False, server_default="0"),
        *_times(),
        sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("operation", sa.String(16), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.CheckConstraint(f"status IN {ITEM_STATUSES}", name="download_items_status"),
    )
    op.create_index("idx_download_items_task_id", "download_items", ["download_task_id"])
    op.create_table(
        "user_download_history",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("product_id", sa.String(255), nullable=False),
        sa.Column("version_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total_download_time_seconds", sa.Integer(), nullable=True),
        sa.Column("total_bytes_downloaded", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("download_task_id", sa.Uuid(), nullable=True),
        sa.Column("target_path", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('completed', 'cancelled', 'failed_permanently')",
                           name="user_download_history_status"),
    )
    op.create_index("idx_user_download_history_user_product", "user_download_history", ["user_id", "product_id"])


def downgrade() -> None:
    op.drop_table("user_download_history")
    op.drop_table("download_items")
    op.drop_table("download_tasks")

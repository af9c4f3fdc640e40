"""The service documents' tables (spec section 4.2.1), as SQLAlchemy 2 models.

``download_tasks``, ``download_items`` and ``user_download_history`` with the documents'
columns. Their ids are UUIDs; ``user_id`` is the token's ``sub`` and ``product_id`` /
``version_id`` are depot's product and version names, so those are text, not UUIDs. Added
to the documents' columns: a task's ``kind`` (a download, an update, an integrity
check), the version an update starts from, its place in the user's queue
(``queue_order``) and its error code; an item's place in its task, the update operation
it stands for and its error code. Manifests, CDN configuration and delta patch information
are not tables here: the catalogue reads them, signed, from the origins.
"""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

TASK_STATUSES = ("queued", "preparing", "downloading", "paused", "verifying", "completed", "error", "cancelled")
ITEM_STATUSES = ("pending", "downloading", "paused", "completed", "error", "verifying")
HISTORY_STATUSES = ("completed", "cancelled", "failed_permanently")
KINDS = ("download", "update", "verify")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    pass


class DownloadTask(Base):
    __tablename__ = "download_tasks"
    __table_args__ = (
        CheckConstraint(_one_of("status", TASK_STATUSES), name="download_tasks_status"),
        CheckConstraint(_one_of("kind", KINDS), name="download_tasks_kind"),
        Index("idx_download_tasks_user_status", "user_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(255))
    product_id: Mapped[str] = mapped_column(String(255))
    version_id: Mapped[str] = mapped_column(String(255))
    target_path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(50), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    total_size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    downloaded_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    # depot's additions
    kind: Mapped[str] = mapped_column(String(16), default="download")
    from_version_id: Mapped[str | None] = mapped_column(String(255), default=None)  # an update's installed version
    queue_order: Mapped[int] = mapped_column(BigInteger, default=0)  # the user's queue, ascending
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)

    items: Mapped[list[DownloadItem]] = relationship(back_populates="task", order_by="DownloadItem.position",
                                                     cascade="all, delete-orphan", passive_deletes=True)


class DownloadItem(Base):
    __tablename__ = "download_items"
    __table_args__ = (
        CheckConstraint(_one_of("status", ITEM_STATUSES), name="download_items_status"),
        Index("idx_download_items_task_id", "download_task_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    download_task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("download_tasks.id", ondelete="CASCADE"))
    relative_path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(50), default="pending")
    downloaded_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    total_size_bytes: Mapped[int] = mapped_column(BigInteger)
    expected_hash_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # depot's additions
    position: Mapped[int] = mapped_column(Integer, default=0)  # the order of the manifest or plan
    operation: Mapped[str | None] = mapped_column(String(16), default=None)  # an update's: copy, patch, chunks
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)

    task: Mapped[DownloadTask] = relationship(back_populates="items")


class UserDownloadHistory(Base):
    __tablename__ = "user_download_history"
    __table_args__ = (
        CheckConstraint(_one_of("status", HISTORY_STATUSES), name="user_download_history_status"),
        Index("idx_user_download_history_user_product", "user_id", "product_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(255))
    product_id: Mapped[str] = mapped_column(String(255))
    version_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    completed_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    total_download_time_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    total_bytes_downloaded: Mapped[int] = mapped_column(BigInteger, default=0)
    # depot's addition: the task it records, and where it was installed
    download_task_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    target_path: Mapped[str | None] = mapped_column(Text, default=None)

"""The tables. Their shape changes only through a migration in serve_app/store/migrations/versions.

- images:      every stored image, uploads and stored results alike.
- results:     the result cache, keyed by sha256(input bytes + canonical pipeline).
- tasks:       batch tasks; `heartbeat_at` is the runner's lease, so a dead runner's task is
               found and resumed (or failed with a reason) instead of staying "running";
               `lease_epoch` grows with every claim and fences each runner write.
               `owner` is the tenant (API key or client identity) that created it.
- task_items:  one row per image of a task, with its outcome.
- blobs:       one row per content-addressed blob, pinned by each write of it; a blob is deleted
               only by deleting its row, in one statement that checks no row names it
               (store/blobs.py).

A row that names a blob is written only after the blob is in storage.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class ImageRecord(Base):
    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))  # "upload" or "result"
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    blob_key: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    media_type: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[str | None] = mapped_column(ForeignKey("images.id"), default=None)
    pipeline: Mapped[str | None] = mapped_column(Text, default=None)
    owner: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class CachedResult(Base):
    """A processed image, found again by what produced it. Independent of `images`: evicting a
    cache entry never breaks a stored image's link."""

    __tablename__ = "results"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    blob_key: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    media_type: Mapped[str] = mapped_column(String(64))
    source_format: Mapped[str] = mapped_column(String(16))
    source_width: Mapped[int] = mapped_column(Integer)
    source_height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class TaskRecord(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # queued, running, succeeded, failed, partially_failed, cancelled
    status: Mapped[str] = mapped_column(String(24), index=True)
    pipeline: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    fingerprint: Mapped[str] = mapped_column(String(64))  # of the request, for key reuse
    total: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    runner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    owner: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), default=None, index=True
    )
    # The webhook: pending -> delivered | failed (with callback_error, the reason).
    callback_url: Mapped[str | None] = mapped_column(Text, default=None)
    callback_state: Mapped[str | None] = mapped_column(String(16), index=True, default=None)
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    callback_error: Mapped[str | None] = mapped_column(Text, default=None)
    callback_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class TaskItem(Base):
    __tablename__ = "task_items"

    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_image_id: Mapped[str] = mapped_column(ForeignKey("images.id"))
    # queued, running, succeeded, failed, cancelled
    status: Mapped[str] = mapped_column(String(16), default="queued")
    result_image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id"), default=None)
    results: Mapped[str | None] = mapped_column(Text, default=None)  # AI outputs, JSON
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class BlobPin(Base):
    """A content-addressed blob's pin: `pinned_at` is the last time a writer was about to store
    it (so a row naming it may be on its way)."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    pinned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

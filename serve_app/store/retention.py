"""Retention: uploads, stored results and ended tasks deleted past their age
(RETENTION_*_S; 0 keeps them), in bounded batches, by the TaskRunner's sweeper.

Ages are measured by the database's clock. An image a task still names (an upload it reads or
a result it made) stays until the task goes, so a live task never loses its input and a task's
result links never dangle; an ended task goes after RETENTION_TASKS_S (its items with it). A
result's link to its deleted source is cleared. Blobs go through `blobs.release`, the one
atomic way to delete a shared blob.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from serve_app.settings import RetentionSettings
from serve_app.store import blobs
from serve_app.store.clock import db_ago
from serve_app.store.db import Database
from serve_app.store.models import ImageRecord, TaskItem, TaskRecord
from serve_app.store.storage import BlobStore
from serve_app.store.task_store import TERMINAL

log = logging.getLogger("ray.serve")


class Retention:
    def __init__(self, db: Database, store: BlobStore, settings: RetentionSettings) -> None:
        self.db = db
        self.store = store
        self.settings = settings

    def sweep(self) -> dict[str, int]:
        """One bounded round: the number deleted of each kind. Blocking."""
        done = {
            "tasks": self._tasks(self.settings.tasks_s),
            "results": self._images("result", self.settings.results_s),
            "uploads": self._images("upload", self.settings.uploads_s),
        }
        done["blobs"] = blobs.collect(self.db, self.store, self.settings.batch)
        if any(done.values()):
            log.info("retention: deleted %s", done)
        return done

    def _tasks(self, age_s: int) -> int:
        if not age_s:
            return 0
        with self.db.session() as session, session.begin():
            ids = session.scalars(
                select(TaskRecord.id)
                .where(TaskRecord.status.in_(TERMINAL), TaskRecord.finished_at < db_ago(age_s))
                .limit(self.settings.batch)
            ).all()
            if not ids:
                return 0
            session.execute(delete(TaskItem).where(TaskItem.task_id.in_(ids)))
            session.execute(delete(TaskRecord).where(TaskRecord.id.in_(ids)))
        return len(ids)

    def _images(self, kind: str, age_s: int) -> int:
        if not age_s:
            return 0
        named = exists().where(
            or_(
                TaskItem.source_image_id == ImageRecord.id,
                TaskItem.result_image_id == ImageRecord.id,
            )
        )
        with self.db.session() as session:
            doomed = session.execute(
                select(ImageRecord.id, ImageRecord.sha256)
                .where(ImageRecord.kind == kind, ImageRecord.created_at < db_ago(age_s), ~named)
                .limit(self.settings.batch)
            ).all()
        deleted = 0
        for image_id, sha in doomed:
            try:
                with self.db.session() as session, session.begin():
                    session.execute(
                        update(ImageRecord)
                        .where(ImageRecord.source_id == image_id)
                        .values(source_id=None)
                    )
                    # Checked again in the DELETE: a task created since the select keeps it.
                    gone = session.execute(
                        delete(ImageRecord).where(ImageRecord.id == image_id, ~named)
                    )
            except IntegrityError:  # a task naming it committed in between: kept
                continue
            if gone.rowcount:  # type: ignore[attr-defined]
                deleted += 1
                blobs.release(self.db, self.store, sha)
        return deleted

"""Batch tasks in the database: the only place a task's state lives, so no process holds
anything a crash could lose.

A runner owns a task while its lease (`heartbeat_at`) is fresh. Claiming is one conditional
UPDATE, so two runners never both win: a queued task, or a running one whose lease ran out
(its runner died), goes to whoever updates it first. Every write a runner makes after that is
conditioned on still owning the task. All methods block: call them from a worker thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from serve_app.errors import Conflict
from serve_app.store.db import Database
from serve_app.store.models import TaskItem, TaskRecord, utcnow

TERMINAL = frozenset({"succeeded", "failed", "partially_failed", "cancelled"})
UNFINISHED_ITEM = ("queued", "running")


@dataclass
class TaskView:
    task: TaskRecord
    items: list[TaskItem]

    def counts(self) -> dict[str, int]:
        by_status: dict[str, int] = {}
        for item in self.items:
            by_status[item.status] = by_status.get(item.status, 0) + 1
        succeeded = by_status.get("succeeded", 0)
        failed = by_status.get("failed", 0)
        return {
            "done": succeeded + failed + by_status.get("cancelled", 0),
            "succeeded": succeeded,
            "failed": failed,
            "total": self.task.total,
        }


def final_status(succeeded: int, failed: int, cancelled: int) -> str:
    if cancelled:
        return "cancelled"
    if failed and succeeded:
        return "partially_failed"
    return "failed" if failed else "succeeded"


class TaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- the ingress side -------------------------------------------------------------

    def create(
        self,
        pipeline_json: str,
        source_ids: list[str],
        *,
        fingerprint: str,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        owner: str | None = None,
    ) -> tuple[TaskRecord, bool]:
        """The new task (True), or the one an earlier request with this key made (False).
        `idempotency_key` arrives scoped to its tenant (guards.tenant.scoped_key)."""
        if idempotency_key and (earlier := self.by_key(idempotency_key, fingerprint)):
            return earlier, False
        task = TaskRecord(
            status="queued",
            pipeline=pipeline_json,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            total=len(source_ids),
            attempts=0,
            request_id=request_id,
            owner=owner,
        )
        try:
            with self.db.session() as session, session.begin():
                session.add(task)
                session.flush()  # the task row before its items (foreign key)
                session.add_all(
                    TaskItem(task_id=task.id, index=i, source_image_id=source, status="queued")
                    for i, source in enumerate(source_ids)
                )
        except IntegrityError:
            # A concurrent retry with the same key won the insert: answer with its task.
            if idempotency_key and (earlier := self.by_key(idempotency_key, fingerprint)):
                return earlier, False
            raise
        return task, True

    def by_key(self, idempotency_key: str, fingerprint: str) -> TaskRecord | None:
        with self.db.session() as session:
            task = session.scalars(
                select(TaskRecord).where(TaskRecord.idempotency_key == idempotency_key)
            ).first()
        if task is not None and task.fingerprint != fingerprint:
            raise Conflict(
                "this Idempotency-Key was used for a different request", field="Idempotency-Key"
            )
        return task

    def view(self, task_id: str) -> TaskView | None:
        with self.db.session() as session:
            task = session.get(TaskRecord, task_id)
            if task is None:
                return None
            items = session.scalars(
                select(TaskItem).where(TaskItem.task_id == task_id).order_by(TaskItem.index)
            ).all()
            return TaskView(task, list(items))

    def cancel(self, task_id: str) -> None:
        """Cancel a task that has not ended; its queued items will not run. A running item
        finishes; the runner sees the cancellation at its next heartbeat or item."""
        now = utcnow()
        with self.db.session() as session, session.begin():
            changed = session.execute(
                update(TaskRecord)
                .where(TaskRecord.id == task_id, TaskRecord.status.in_(("queued", "running")))
                .values(status="cancelled", finished_at=now, error="cancelled by request")
            )
            if changed.rowcount:  # type: ignore[attr-defined]
                session.execute(
                    update(TaskItem)
                    .where(TaskItem.task_id == task_id, TaskItem.status == "queued")
                    .values(status="cancelled", finished_at=now)
                )

    # --- the runner side --------------------------------------------------------------

    def claimable(self, lease_s: float, limit: int) -> list[str]:
        """Queued tasks, and running ones whose runner stopped renewing its lease."""
        stale = utcnow() - timedelta(seconds=lease_s)
        with self.db.session() as session:
            rows = session.scalars(
                select(TaskRecord.id)
                .where(
                    or_(
                        TaskRecord.status == "queued",
                        (TaskRecord.status == "running") & (TaskRecord.heartbeat_at < stale),
                    )
                )
                .order_by(TaskRecord.created_at)
                .limit(limit)
            ).all()
        return list(rows)

    def claim(self, task_id: str, runner: str, lease_s: float) -> TaskRecord | None:
        """Take the task if it is queued or its lease ran out; None if someone else has it."""
        now = utcnow()
        stale = now - timedelta(seconds=lease_s)
        with self.db.session() as session, session.begin():
            won = session.execute(
                update(TaskRecord)
                .where(
                    TaskRecord.id == task_id,
                    or_(
                        TaskRecord.status == "queued",
                        (TaskRecord.status == "running") & (TaskRecord.heartbeat_at < stale),
                    ),
                )
                .values(
                    status="running",
                    runner=runner,
                    heartbeat_at=now,
                    attempts=TaskRecord.attempts + 1,
                    started_at=func.coalesce(TaskRecord.started_at, now),
                )
            )
            if not won.rowcount:  # type: ignore[attr-defined]
                return None
            return session.get(TaskRecord, task_id)

    def _owned(self, task_id: str, runner: str) -> Any:
        return (
            (TaskRecord.id == task_id)
            & (TaskRecord.runner == runner)
            & (TaskRecord.status == "running")
        )

    def heartbeat(self, task_id: str, runner: str) -> bool:
        """Renew the lease; False when the task was cancelled or taken over."""
        with self.db.session() as session, session.begin():
            renewed = session.execute(
                update(TaskRecord).where(self._owned(task_id, runner)).values(heartbeat_at=utcnow())
            )
            return bool(renewed.rowcount)  # type: ignore[attr-defined]

    def pending_items(self, task_id: str) -> list[TaskItem]:
        with self.db.session() as session:
            return list(
                session.scalars(
                    select(TaskItem)
                    .where(TaskItem.task_id == task_id, TaskItem.status.in_(UNFINISHED_ITEM))
                    .order_by(TaskItem.index)
                ).all()
            )

    def _set_item(self, task_id: str, index: int, **values: Any) -> None:
        with self.db.session() as session, session.begin():
            session.execute(
                update(TaskItem)
                .where(TaskItem.task_id == task_id, TaskItem.index == index)
                .values(**values)
            )

    def item_running(self, task_id: str, index: int) -> None:
        self._set_item(task_id, index, status="running")

    def item_succeeded(
        self,
        task_id: str,
        index: int,
        result_image_id: str | None,
        results: list[dict[str, Any]],
    ) -> None:
        self._set_item(
            task_id,
            index,
            status="succeeded",
            result_image_id=result_image_id,
            results=json.dumps(results) if results else None,
            error_code=None,
            error_message=None,
            finished_at=utcnow(),
        )

    def item_failed(self, task_id: str, index: int, code: str, message: str) -> None:
        self._set_item(
            task_id,
            index,
            status="failed",
            error_code=code,
            error_message=message,
            finished_at=utcnow(),
        )

    def finish(self, task_id: str, runner: str) -> str | None:
        """Close a task whose items have all ended; the status it got (None: not ours)."""
        with self.db.session() as session, session.begin():
            counts = dict(
                session.execute(
                    select(TaskItem.status, func.count())
                    .where(TaskItem.task_id == task_id)
                    .group_by(TaskItem.status)
                ).all()
            )
            if any(counts.get(status, 0) for status in UNFINISHED_ITEM):
                return None
            status = final_status(
                counts.get("succeeded", 0), counts.get("failed", 0), counts.get("cancelled", 0)
            )
            done = session.execute(
                update(TaskRecord)
                .where(self._owned(task_id, runner))
                .values(status=status, finished_at=utcnow())
            )
            return status if done.rowcount else None  # type: ignore[attr-defined]

    def fail(self, task_id: str, reason: str, runner: str | None = None) -> None:
        """End a task as failed with a reason; its unfinished items fail with it."""
        now = utcnow()
        with self.db.session() as session, session.begin():
            where = (
                self._owned(task_id, runner)
                if runner
                else (TaskRecord.id == task_id) & TaskRecord.status.in_(("queued", "running"))
            )
            ended = session.execute(
                update(TaskRecord)
                .where(where)
                .values(status="failed", error=reason, finished_at=now)
            )
            if ended.rowcount:  # type: ignore[attr-defined]
                session.execute(
                    update(TaskItem)
                    .where(TaskItem.task_id == task_id, TaskItem.status.in_(UNFINISHED_ITEM))
                    .values(
                        status="failed",
                        error_code="task_failed",
                        error_message=reason,
                        finished_at=now,
                    )
                )

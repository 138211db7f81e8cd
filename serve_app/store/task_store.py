"""Batch tasks in the database: the only place a task's state lives, so no process holds
anything a crash could lose.

A runner owns a task while its lease (`heartbeat_at`) is fresh. Claiming is one conditional
UPDATE, so two runners never both win: a queued task, or a running one whose lease ran out
(its runner died), goes to whoever updates it first. Every write a runner makes after that is
fenced: conditioned on the lease's runner and epoch (`Lease`), which every claim bumps.
Lease times come from the database's clock (store/clock.py), never a replica's.

A task's webhook (`callback_url`) is a small state machine on the same row: the write that ends
a task (finish, fail, cancel) sets `callback_state='pending'`, due at once. A sender claims a
due one with one conditional UPDATE that pushes `callback_next_at` a lease ahead and counts the
attempt, so two runners never post the same one at once (a sender that dies mid-POST leaves it
to be claimed again once its lease is past: at-least-once). It then records the outcome, fenced
on that attempt: `delivered`, another try after a back-off, or `failed` with the reason.
All methods block: call them from a worker thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from serve_app.errors import Conflict
from serve_app.store.clock import db_ago, db_in, db_now
from serve_app.store.db import Database
from serve_app.store.models import TaskItem, TaskRecord, utcnow

TERMINAL = frozenset({"succeeded", "failed", "partially_failed", "cancelled"})
UNFINISHED_ITEM = ("queued", "running")


@dataclass(frozen=True)
class Lease:
    """A runner's hold on a task: its name and the epoch its claim started. Every write the
    runner makes names both, so one whose lease lapsed (paused, partitioned) and was taken over
    writes nothing, even if it resumes believing it still owns the task."""

    runner: str
    epoch: int

    @classmethod
    def of(cls, task: TaskRecord) -> Lease:
        assert task.runner is not None
        return cls(task.runner, task.lease_epoch)


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
        callback_url: str | None = None,
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
            callback_url=callback_url,
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
        """Cancel a task that has not ended; its unfinished items end cancelled. The runner's
        fenced writes are refused from now on, and it stops its work in flight at its next
        heartbeat or item write."""
        now = utcnow()
        with self.db.session() as session, session.begin():
            changed = session.execute(
                update(TaskRecord)
                .where(TaskRecord.id == task_id, TaskRecord.status.in_(("queued", "running")))
                .values(
                    status="cancelled", finished_at=now, error="cancelled by request", **_ended()
                )
            )
            if changed.rowcount:  # type: ignore[attr-defined]
                session.execute(
                    update(TaskItem)
                    .where(TaskItem.task_id == task_id, TaskItem.status.in_(UNFINISHED_ITEM))
                    .values(status="cancelled", finished_at=now)
                )

    # --- the runner side --------------------------------------------------------------

    def claimable(self, lease_s: float, limit: int) -> list[str]:
        """Queued tasks, and running ones whose runner stopped renewing its lease."""
        with self.db.session() as session:
            rows = session.scalars(
                select(TaskRecord.id)
                .where(_claimable(lease_s))
                .order_by(TaskRecord.created_at)
                .limit(limit)
            ).all()
        return list(rows)

    def claim(self, task_id: str, runner: str, lease_s: float) -> TaskRecord | None:
        """Take the task if it is queued or its lease ran out; None if someone else has it.
        Each claim starts a new epoch: whoever held the lease before is fenced off."""
        with self.db.session() as session, session.begin():
            won = session.execute(
                update(TaskRecord)
                .where(TaskRecord.id == task_id, _claimable(lease_s))
                .values(
                    status="running",
                    runner=runner,
                    lease_epoch=TaskRecord.lease_epoch + 1,
                    heartbeat_at=db_now(),
                    attempts=TaskRecord.attempts + 1,
                    started_at=func.coalesce(TaskRecord.started_at, db_now()),
                )
            )
            if not won.rowcount:  # type: ignore[attr-defined]
                return None
            return session.get(TaskRecord, task_id)

    def counts(self) -> dict[str, int]:
        """Unfinished tasks by status (queued, running): the `ray_image_tasks` gauge."""
        with self.db.session() as session:
            rows = session.execute(
                select(TaskRecord.status, func.count())
                .where(TaskRecord.status.in_(("queued", "running")))
                .group_by(TaskRecord.status)
            ).all()
        return {"queued": 0, "running": 0} | {status: n for status, n in rows}

    def heartbeat(self, task_id: str, lease: Lease) -> bool:
        """Renew the lease; False when the task was cancelled or taken over."""
        with self.db.session() as session, session.begin():
            renewed = session.execute(
                update(TaskRecord).where(_owned(task_id, lease)).values(heartbeat_at=db_now())
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

    def _set_item(self, task_id: str, index: int, lease: Lease, **values: Any) -> bool:
        """Write an item while the lease holds; False (nothing written) once it is lost.
        The task row is share-locked first (PostgreSQL), so a takeover waits for this write
        rather than racing it; SQLite runs the one UPDATE under its write lock."""
        with self.db.session() as session, session.begin():
            held = session.execute(
                select(TaskRecord.id).where(_owned(task_id, lease)).with_for_update(read=True)
            ).first()
            if held is None:
                return False
            written = session.execute(
                update(TaskItem)
                .where(
                    TaskItem.task_id == task_id,
                    TaskItem.index == index,
                    select(TaskRecord.id).where(_owned(task_id, lease)).exists(),
                )
                .values(**values)
            )
            return bool(written.rowcount)  # type: ignore[attr-defined]

    def item_running(self, task_id: str, index: int, lease: Lease) -> bool:
        return self._set_item(task_id, index, lease, status="running")

    def item_succeeded(
        self,
        task_id: str,
        index: int,
        lease: Lease,
        result_image_id: str | None,
        results: list[dict[str, Any]],
    ) -> bool:
        return self._set_item(
            task_id,
            index,
            lease,
            status="succeeded",
            result_image_id=result_image_id,
            results=json.dumps(results) if results else None,
            error_code=None,
            error_message=None,
            finished_at=db_now(),
        )

    def item_failed(self, task_id: str, index: int, lease: Lease, code: str, message: str) -> bool:
        return self._set_item(
            task_id,
            index,
            lease,
            status="failed",
            error_code=code,
            error_message=message,
            finished_at=db_now(),
        )

    def finish(self, task_id: str, lease: Lease) -> str | None:
        """Close a task whose items have all ended; the status it got (None: not ours)."""
        with self.db.session() as session, session.begin():
            held = session.execute(
                select(TaskRecord.id).where(_owned(task_id, lease)).with_for_update()
            ).first()
            if held is None:
                return None
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
                .where(_owned(task_id, lease))
                .values(status=status, finished_at=db_now(), **_ended())
            )
            return status if done.rowcount else None  # type: ignore[attr-defined]

    def fail(self, task_id: str, reason: str, lease: Lease | None = None) -> bool:
        """End a task as failed with a reason; its unfinished items fail with it. A runner
        passes its lease (nothing happens once it is lost); None ends it whoever runs it."""
        with self.db.session() as session, session.begin():
            where = (
                _owned(task_id, lease)
                if lease
                else (TaskRecord.id == task_id) & TaskRecord.status.in_(("queued", "running"))
            )
            ended = session.execute(
                update(TaskRecord)
                .where(where)
                .values(status="failed", error=reason, finished_at=db_now(), **_ended())
            )
            if not ended.rowcount:  # type: ignore[attr-defined]
                return False
            session.execute(
                update(TaskItem)
                .where(TaskItem.task_id == task_id, TaskItem.status.in_(UNFINISHED_ITEM))
                .values(
                    status="failed",
                    error_code="task_failed",
                    error_message=reason,
                    finished_at=db_now(),
                )
            )
            return True

    # --- webhooks -------------------------------------------------------------------

    def due_callbacks(self, limit: int) -> list[str]:
        """Tasks whose webhook is pending and due by the database's clock."""
        with self.db.session() as session:
            rows = session.scalars(
                select(TaskRecord.id)
                .where(_callback_due())
                .order_by(TaskRecord.callback_next_at)
                .limit(limit)
            ).all()
        return list(rows)

    def claim_callback(self, task_id: str, lease_s: float) -> int | None:
        """Take the task's pending, due webhook for one attempt: its number (fencing the
        outcome's write), or None when it is not due or another sender has it. Until the
        outcome is written, or `lease_s` passes, nobody else claims it."""
        with self.db.session() as session, session.begin():
            won = session.execute(
                update(TaskRecord)
                .where(TaskRecord.id == task_id, _callback_due())
                .values(
                    callback_next_at=db_in(lease_s),
                    callback_attempts=TaskRecord.callback_attempts + 1,
                )
            )
            if not won.rowcount:  # type: ignore[attr-defined]
                return None
            attempts = session.scalar(
                select(TaskRecord.callback_attempts).where(TaskRecord.id == task_id)
            )
        return int(attempts or 0)

    def callback_delivered(self, task_id: str, attempt: int) -> bool:
        return self._callback_outcome(
            task_id, attempt, callback_state="delivered", callback_error=None, callback_next_at=None
        )

    def callback_retry(self, task_id: str, attempt: int, reason: str, wait_s: float) -> bool:
        """Another attempt after `wait_s`; the reason stays visible meanwhile."""
        return self._callback_outcome(
            task_id, attempt, callback_error=reason, callback_next_at=db_in(wait_s)
        )

    def callback_failed(self, task_id: str, attempt: int, reason: str) -> bool:
        return self._callback_outcome(
            task_id, attempt, callback_state="failed", callback_error=reason, callback_next_at=None
        )

    def _callback_outcome(self, task_id: str, attempt: int, **values: Any) -> bool:
        """Written only by the attempt's own claim (still pending, no later claim)."""
        with self.db.session() as session, session.begin():
            written = session.execute(
                update(TaskRecord)
                .where(
                    TaskRecord.id == task_id,
                    TaskRecord.callback_state == "pending",
                    TaskRecord.callback_attempts == attempt,
                )
                .values(**values)
            )
            return bool(written.rowcount)  # type: ignore[attr-defined]


def _ended() -> dict[str, Any]:
    """The webhook's part of the write that ends a task: pending and due now, if it has one."""
    has_url = TaskRecord.callback_url.is_not(None)
    return {
        "callback_state": case((has_url, "pending"), else_=None),
        "callback_next_at": case((has_url, db_now()), else_=None),
    }


def _callback_due() -> Any:
    return (TaskRecord.callback_state == "pending") & (TaskRecord.callback_next_at <= db_now())


def _claimable(lease_s: float) -> Any:
    """Queued, or running under a lease that ran out by the database's clock."""
    return or_(
        TaskRecord.status == "queued",
        (TaskRecord.status == "running") & (TaskRecord.heartbeat_at < db_ago(lease_s)),
    )


def _owned(task_id: str, lease: Lease) -> Any:
    """The fencing condition: still running under this very claim."""
    return (
        (TaskRecord.id == task_id)
        & (TaskRecord.runner == lease.runner)
        & (TaskRecord.lease_epoch == lease.epoch)
        & (TaskRecord.status == "running")
    )

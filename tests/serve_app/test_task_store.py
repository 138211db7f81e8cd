"""Task state in the database, on SQLite and PostgreSQL: claims are exclusive, a lapsed lease
is taken over, idempotency keys replay, cancellation and endings are final."""

from __future__ import annotations

import time

import pytest

from serve_app.errors import Conflict
from serve_app.store.task_store import Lease, TaskStore, final_status
from tests.serve_app.conftest import Backend, stored_images


def _create(store: TaskStore, sources: list[str], key: str | None = None, fp: str = "fp") -> str:
    task, created = store.create('{"steps": []}', sources, fingerprint=fp, idempotency_key=key)
    assert created
    return task.id


def test_create_and_view(backend: Backend) -> None:
    store = TaskStore(backend.db)
    task_id = _create(store, stored_images(backend, 3))
    view = store.view(task_id)
    assert view is not None
    assert view.task.status == "queued" and view.task.total == 3
    assert [item.index for item in view.items] == [0, 1, 2]
    assert view.counts() == {"done": 0, "succeeded": 0, "failed": 0, "total": 3}
    assert store.view("nope") is None


def test_idempotency_key_replays_and_refuses_another_request(backend: Backend) -> None:
    store = TaskStore(backend.db)
    sources = stored_images(backend, 2)
    first = _create(store, sources, key="k-1", fp="same")
    again, created = store.create("{}", sources, fingerprint="same", idempotency_key="k-1")
    assert (again.id, created) == (first, False)
    with pytest.raises(Conflict):
        store.create("{}", sources, fingerprint="other", idempotency_key="k-1")


def test_claim_is_exclusive_and_a_lapsed_lease_is_taken_over(backend: Backend) -> None:
    store = TaskStore(backend.db)
    task_id = _create(store, stored_images(backend, 1))
    assert store.claimable(lease_s=60, limit=10) == [task_id]
    first = store.claim(task_id, "runner-a", lease_s=60)
    assert first is not None and first.attempts == 1 and first.runner == "runner-a"
    assert store.claim(task_id, "runner-b", lease_s=60) is None  # a's lease is fresh
    assert store.claimable(lease_s=60, limit=10) == []
    lease_a = Lease.of(first)
    assert store.heartbeat(task_id, lease_a)
    time.sleep(1.1)
    # runner-a stopped renewing: after the lease, b takes the task over
    assert store.claimable(lease_s=1, limit=10) == [task_id]
    taken = store.claim(task_id, "runner-b", lease_s=1)
    assert taken is not None and taken.attempts == 2 and taken.runner == "runner-b"
    assert not store.heartbeat(task_id, lease_a)  # a learns it lost the task
    assert store.finish(task_id, lease_a) is None


def test_items_and_final_status(backend: Backend) -> None:
    store = TaskStore(backend.db)
    task_id = _create(store, stored_images(backend, 3))
    claimed = store.claim(task_id, "r", lease_s=30)
    assert claimed is not None
    lease = Lease.of(claimed)
    assert store.item_running(task_id, 0, lease)
    assert store.item_succeeded(task_id, 0, lease, None, [{"op": "ocr", "text": "hi"}])
    assert store.item_failed(task_id, 1, lease, "bad_image", "the file is not an image")
    assert [i.index for i in store.pending_items(task_id)] == [2]
    assert store.finish(task_id, lease) is None  # an item is still open
    assert store.item_succeeded(task_id, 2, lease, None, [])
    assert store.finish(task_id, lease) == "partially_failed"
    view = store.view(task_id)
    assert view is not None and view.task.status == "partially_failed"
    assert view.task.finished_at is not None
    assert view.counts() == {"done": 3, "succeeded": 2, "failed": 1, "total": 3}
    assert view.items[1].error_code == "bad_image"


def test_cancel_stops_queued_items_and_the_runner(backend: Backend) -> None:
    store = TaskStore(backend.db)
    task_id = _create(store, stored_images(backend, 3))
    claimed = store.claim(task_id, "r", lease_s=30)
    assert claimed is not None
    lease = Lease.of(claimed)
    assert store.item_succeeded(task_id, 0, lease, None, [])
    assert store.item_running(task_id, 1, lease)
    store.cancel(task_id)
    assert not store.heartbeat(task_id, lease)
    assert not store.item_succeeded(task_id, 1, lease, None, [])  # nothing after the end
    view = store.view(task_id)
    assert view is not None and view.task.status == "cancelled"
    # The running item cannot be written by its runner any more: it ends with the task.
    assert [i.status for i in view.items] == ["succeeded", "cancelled", "cancelled"]
    assert store.claim(task_id, "other", lease_s=0) is None  # an ended task is never claimed


def test_fail_ends_unfinished_items_with_the_reason(backend: Backend) -> None:
    store = TaskStore(backend.db)
    task_id = _create(store, stored_images(backend, 2))
    store.fail(task_id, "gave up")
    view = store.view(task_id)
    assert view is not None and (view.task.status, view.task.error) == ("failed", "gave up")
    assert {i.error_message for i in view.items} == {"gave up"}


def test_a_runner_paused_past_its_lease_writes_nothing_once_resumed(backend: Backend) -> None:
    """Fencing: runner a stalls past its lease, b takes over and finishes; a then resumes,
    still thinking it owns the task. The outcome is b's and nothing b wrote is undone."""
    store = TaskStore(backend.db)
    task_id = _create(store, stored_images(backend, 2))
    claimed_a = store.claim(task_id, "runner", lease_s=1)
    assert claimed_a is not None
    a = Lease.of(claimed_a)
    assert store.item_running(task_id, 0, a)
    time.sleep(1.2)  # a is paused (GC, SIGSTOP, a partition): its lease runs out
    claimed_b = store.claim(task_id, "runner", lease_s=1)  # the same name: only the epoch differs
    assert claimed_b is not None
    b = Lease.of(claimed_b)
    assert b.epoch == a.epoch + 1
    for index in (0, 1):
        assert store.item_running(task_id, index, b)
        assert store.item_succeeded(task_id, index, b, None, [{"by": "b"}])
    assert store.finish(task_id, b) == "succeeded"
    # a resumes where it stopped: every write it tries is refused.
    assert not store.item_failed(task_id, 0, a, "internal_error", "a's late failure")
    assert not store.item_running(task_id, 1, a)
    assert not store.item_succeeded(task_id, 1, a, None, [{"by": "a"}])
    assert not store.heartbeat(task_id, a)
    assert store.finish(task_id, a) is None
    assert not store.fail(task_id, "gave up after 1 attempts", a)
    view = store.view(task_id)
    assert view is not None and view.task.status == "succeeded" and view.task.error is None
    assert [(i.status, i.results) for i in view.items] == [("succeeded", '[{"by": "b"}]')] * 2


def test_a_write_under_another_epoch_or_runner_is_refused(
    backend: Backend,
) -> None:
    """While a's lease is fresh, another epoch is refused just the same."""
    store = TaskStore(backend.db)
    task_id = _create(store, stored_images(backend, 1))
    claimed = store.claim(task_id, "a", lease_s=30)
    assert claimed is not None
    stale = Lease("a", claimed.lease_epoch - 1)
    assert not store.item_running(task_id, 0, stale)
    assert not store.item_running(task_id, 0, Lease("b", claimed.lease_epoch))
    assert store.item_running(task_id, 0, Lease.of(claimed))


def test_lease_times_come_from_the_database_clock(backend: Backend) -> None:
    """A lease written by the database is stale exactly after lease_s by the database's clock:
    on SQLite and on PostgreSQL under a session time zone far from UTC."""
    if backend.db.engine.dialect.name == "postgresql":
        from sqlalchemy import event

        @event.listens_for(backend.db.engine, "connect")
        def _far_zone(conn, _record) -> None:  # type: ignore[no-untyped-def]
            with conn.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'Pacific/Kiritimati'")  # UTC+14

        backend.db.engine.dispose()
    store = TaskStore(backend.db)
    task_id = _create(store, stored_images(backend, 1))
    claimed = store.claim(task_id, "a", lease_s=2)
    assert claimed is not None and claimed.heartbeat_at is not None
    assert store.claimable(lease_s=2, limit=10) == []  # fresh: not off by a zone's hours
    assert store.claimable(lease_s=3600, limit=10) == []
    time.sleep(2.2)
    assert store.claimable(lease_s=2, limit=10) == [task_id]
    assert store.claimable(lease_s=3600, limit=10) == []


@pytest.mark.parametrize(
    ("succeeded", "failed", "cancelled", "status"),
    [(3, 0, 0, "succeeded"), (0, 3, 0, "failed"), (2, 1, 0, "partially_failed"),
     (1, 0, 2, "cancelled")],
)  # fmt: skip
def test_final_status(succeeded: int, failed: int, cancelled: int, status: str) -> None:
    assert final_status(succeeded, failed, cancelled) == status

"""A task's progress as Server-Sent Events: GET /api/v1/tasks/{task_id}/events.

- `item`: one per item as it ends (succeeded, failed or cancelled), data = the item's JSON as
  the task's `items` show it plus the task's `progress` as that item ended; `end`: once,
  when the task has ended, data = the whole task's JSON; then the stream closes.
  Every `item` comes before the `end`.
- Each `item` carries an id, `<finished_at in µs>-<index>`. A client that reconnects (browsers'
  EventSource do it by themselves, after the `retry` we send) with `Last-Event-ID` gets the items
  that ended after that one. Items stamped within RESUME_MARGIN_S before it are sent again, so
  an item whose write committed late is never skipped: after a reconnection an item may come
  twice, never not at all (its `index` tells them apart).
- The stream reads the database (the task's view, through the database bulkhead) every
  TASKS_EVENTS_POLL_S, sends a comment every TASKS_EVENTS_HEARTBEAT_S so proxies keep it open,
  and closes after TASKS_EVENTS_MAX_S, under Serve's request_timeout_s (the client reconnects
  and resumes). At most TASKS_EVENTS_MAX_STREAMS per ingress replica: past that, 503.
- A client that goes away ends its stream at once: EventStream closes the generator whichever
  way Starlette learns of the disconnect, so no stream outlives its client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from pipelines.errors import Overloaded
from serve_app.observe.metrics import record_event_streams
from serve_app.schemas import TaskOut
from serve_app.services.tasks import TaskService
from serve_app.settings import TaskSettings
from serve_app.store.models import TaskItem
from serve_app.store.task_store import TERMINAL, TaskView

RESUME_MARGIN_S = 2.0
RECONNECT_MS = 1000
ITEM_ENDED = frozenset({"succeeded", "failed", "cancelled"})


def _micros(at: datetime | None) -> int:
    if at is None:
        return 0
    return int(at.replace(tzinfo=at.tzinfo or UTC).timestamp() * 1_000_000)


def event_id(item: TaskItem) -> str:
    return f"{_micros(item.finished_at)}-{item.index}"


def parse_event_id(raw: str | None) -> tuple[int, int] | None:
    """(µs, index) of a Last-Event-ID we sent; None for none or anything else."""
    if not raw:
        return None
    at, _, index = raw.strip().partition("-")
    if not (at.isdigit() and index.isdigit()):
        return None
    return int(at), int(index)


def frame(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    lines = [f"id: {event_id}"] if event_id else []
    lines += [f"event: {event}", f"data: {json.dumps(data, separators=(',', ':'))}"]
    return ("\n".join(lines) + "\n\n").encode()


def ended_items(view: TaskView, sent: set[int], resume: tuple[int, int] | None) -> list[TaskItem]:
    """The items that ended and have not been sent on this stream, oldest first; after a
    resume, only those stamped after RESUME_MARGIN_S before the resumed one (but that one)."""
    floor = resume[0] - int(RESUME_MARGIN_S * 1_000_000) if resume else None
    ended = [
        item
        for item in view.items
        if item.status in ITEM_ENDED
        and item.index not in sent
        and (
            floor is None
            or (
                _micros(item.finished_at) >= floor
                and (_micros(item.finished_at), item.index) != resume
            )
        )
    ]
    return sorted(ended, key=lambda item: (_micros(item.finished_at), item.index))


def progress_at_each_end(view: TaskView) -> dict[int, dict[str, int]]:
    """Each ended item's index -> the task's progress as that item ended (the items ended up
    to it, in the order they ended), so `done` counts 1, 2, 3... however many items one read
    of the database finds ended at once."""
    counts = {"done": 0, "succeeded": 0, "failed": 0, "total": view.task.total}
    progress = {}
    ended = [item for item in view.items if item.status in ITEM_ENDED]
    for item in sorted(ended, key=lambda item: (_micros(item.finished_at), item.index)):
        counts["done"] += 1
        if item.status in ("succeeded", "failed"):
            counts[item.status] += 1
        progress[item.index] = dict(counts)
    return progress


class EventStream(StreamingResponse):
    """A streaming response that always closes its generator when the response ends, the
    client's disconnect included (Starlette leaves that to the garbage collector on one path)."""

    body_iterator: AsyncIterator[bytes]

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self._body, "aclose", None)
            if close is not None:
                await close()


class TaskEvents:
    def __init__(self, tasks: TaskService, settings: TaskSettings) -> None:
        self.tasks = tasks
        self.settings = settings
        self.open = 0  # streams running on this replica

    async def stream(
        self, task_id: str, owner: str | None, last_event_id: str | None = None
    ) -> AsyncIterator[bytes]:
        """Check first (404 for another tenant's or no task, 503 past the stream limit), so
        the client gets a plain error rather than a stream that ends at once."""
        view = await self.tasks.view(task_id, owner)
        if self.open >= self.settings.events_max_streams:
            raise Overloaded(
                f"{self.open} event streams are open on this replica; poll the task instead",
                field="task_id",
            )
        return self._events(view, owner, parse_event_id(last_event_id))

    async def _events(
        self, view: TaskView, owner: str | None, resume: tuple[int, int] | None
    ) -> AsyncIterator[bytes]:
        self.open += 1
        record_event_streams(self.open)
        try:
            loop = asyncio.get_running_loop()
            closes_at = loop.time() + self.settings.events_max_s
            quiet_since = loop.time()
            sent: set[int] = set()
            yield f"retry: {RECONNECT_MS}\n\n".encode()
            while True:
                body = TaskOut.of(view)
                by_index = {item.index: item for item in body.items}
                progress = progress_at_each_end(view)
                for item in ended_items(view, sent, resume):
                    data = by_index[item.index].model_dump(mode="json")
                    data["progress"] = progress[item.index]
                    yield frame("item", data, event_id(item))
                    sent.add(item.index)
                    quiet_since = loop.time()
                if view.task.status in TERMINAL:
                    yield frame("end", body.model_dump(mode="json"))
                    return
                if loop.time() >= closes_at:
                    return  # under Serve's request timeout: the client resumes from its last id
                if loop.time() - quiet_since >= self.settings.events_heartbeat_s:
                    yield b": keep-alive\n\n"
                    quiet_since = loop.time()
                await asyncio.sleep(self.settings.events_poll_s)
                view = await self.tasks.view(view.task.id, owner)
        finally:
            self.open -= 1
            record_event_streams(self.open)

"""Batch tasks: POST /api/v1/batch, GET and DELETE /api/v1/tasks/{task_id}, and its events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.datastructures import UploadFile

from pipelines.errors import InvalidParameter
from pipelines.spec import validated
from pipelines.tasks import TaskPipeline
from serve_app import context
from serve_app.errors import UnsupportedMediaType
from serve_app.guards import tenant
from serve_app.guards.guard import request_id
from serve_app.routes.common import json_field, parse_json, read_form
from serve_app.schemas import ERROR_RESPONSES, TaskOut
from serve_app.services.task_events import EventStream, TaskEvents
from serve_app.services.tasks import TaskService

router = APIRouter(prefix="/api/v1", tags=["tasks"])


async def _task_service() -> TaskService:
    return context.task_service()  # async: no worker-thread hop per request


Tasks = Annotated[TaskService, Depends(_task_service)]


async def _task_events() -> TaskEvents:
    return context.task_events()


Events = Annotated[TaskEvents, Depends(_task_events)]
TaskId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]

_CALLBACK = "http(s) URL: one signed POST of the task's JSON when it ends (README: Webhooks)"
_BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "image_ids": {"type": "array", "items": {"type": "string"}},
                        "pipeline": {
                            "type": "string",
                            "description": 'JSON: {"steps": [...], "format", "quality"}; steps '
                            "are image operations and detect_objects, ocr, detect_faces",
                        },
                        "callback_url": {"type": "string", "description": _CALLBACK},
                    },
                    "required": ["pipeline"],
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image_ids": {"type": "array", "items": {"type": "string"}},
                        "pipeline": {"type": "object"},
                        "callback_url": {"type": "string", "description": _CALLBACK},
                    },
                    "required": ["image_ids", "pipeline"],
                }
            },
        },
    }
}


def _pipeline(raw: Any) -> TaskPipeline:
    if raw is None:
        raise InvalidParameter("pipeline is required", field="pipeline")
    return validated(TaskPipeline, raw)


def _ids(values: list[Any]) -> list[str]:
    """image_ids as repeated fields, a comma-separated list, or both."""
    ids = [part.strip() for value in values for part in str(value).split(",") if part.strip()]
    for image_id in ids:
        if len(image_id) > 64 or not image_id.replace("-", "").replace("_", "").isalnum():
            raise InvalidParameter(f"not an image id: {image_id[:70]!r}", field="image_ids")
    return ids


async def _read_batch(
    request: Request,
) -> tuple[TaskPipeline, list[bytes], list[str], Any]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = parse_json(await request.body(), "body")
        if not isinstance(body, dict):
            raise InvalidParameter("the body must be a JSON object", field="body")
        raw_ids = body.get("image_ids") or []
        if not isinstance(raw_ids, list):
            raise InvalidParameter("image_ids must be a list", field="image_ids")
        return _pipeline(body.get("pipeline")), [], _ids(raw_ids), body.get("callback_url")
    if not content_type.startswith("multipart/form-data"):
        raise UnsupportedMediaType("send multipart/form-data or application/json", field="body")
    form = await read_form(request, max_files=10_000, max_fields=10_000)
    pipeline = await json_field(form, "pipeline", TaskPipeline)
    files = [await f.read() for f in form.getlist("files") if isinstance(f, UploadFile)]
    files += [await f.read() for f in form.getlist("file") if isinstance(f, UploadFile)]
    ids = _ids([v for v in form.getlist("image_ids") + form.getlist("image_id") if v])
    return pipeline, files, ids, form.get("callback_url")


def _task_response(view: Any, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    body = TaskOut.of(view)
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status,
        headers={"Location": body.url, **(headers or {})},
    )


@router.post(
    "/batch",
    status_code=202,
    response_model=TaskOut,
    responses={
        200: {"model": TaskOut, "description": "Replay of an Idempotency-Key"},
        409: ERROR_RESPONSES[422] | {"description": "Idempotency-Key reused"},
        **ERROR_RESPONSES,
    },
    openapi_extra=_BATCH_BODY,
)
async def batch(
    request: Request,
    tasks: Tasks,
    idempotency_key: str | None = Header(None, max_length=255),
    x_request_id: str | None = Header(None, max_length=128),
) -> JSONResponse:
    """Accept several images (uploaded `files` and/or stored `image_ids`) and one pipeline
    mixing image operations and AI steps; answers 202 with the task at once."""
    pipeline, files, ids, callback_url = await _read_batch(request)
    view, created = await tasks.submit(
        pipeline, files, ids, idempotency_key=idempotency_key,
        request_id=request_id() or x_request_id, tenant=tenant.current(),
        callback_url=callback_url,
    )  # fmt: skip
    if created:
        return _task_response(view, 202)
    return _task_response(view, 200, {"Idempotent-Replayed": "true"})


@router.get("/tasks/{task_id}", response_model=TaskOut, responses=ERROR_RESPONSES)
async def get_task(task_id: TaskId, tasks: Tasks) -> JSONResponse:
    """Status, progress, per-item results or errors, and links to the result images."""
    return _task_response(await tasks.view(task_id, tenant.current_owner()), 200)


@router.delete(
    "/tasks/{task_id}",
    response_model=TaskOut,
    responses={409: {"description": "The task has already ended"}, **ERROR_RESPONSES},
)
async def cancel_task(task_id: TaskId, tasks: Tasks) -> JSONResponse:
    """Cancel: unfinished items end cancelled; the runner stops the work in flight."""
    return _task_response(await tasks.cancel(task_id, tenant.current_owner()), 200)


@router.get(
    "/tasks/{task_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "item events, then end"},
        **ERROR_RESPONSES,
    },
)
async def task_events(
    task_id: TaskId,
    events: Events,
    last_event_id: str | None = Header(None, max_length=64),
) -> EventStream:
    """Server-Sent Events: `item` as each item ends, then `end` with the task; resumable with
    `Last-Event-ID`. The stream closes after TASKS_EVENTS_MAX_S; EventSource reconnects."""
    return EventStream(await events.stream(task_id, tenant.current_owner(), last_event_id))

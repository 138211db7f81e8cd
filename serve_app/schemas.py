"""Response bodies, as the OpenAPI document shows them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, computed_field

from pipelines.spec import PipelineSpec
from serve_app.store.models import ImageRecord
from serve_app.store.task_store import TaskView


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_parameter"])
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class StoredImage(BaseModel):
    id: str
    kind: str = Field(description="upload or result")
    sha256: str
    format: str
    media_type: str
    width: int
    height: int
    bytes: int
    source_id: str | None = None
    url: str = Field(description="where to download it")
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def size(self) -> dict[str, int]:
        """Dimensions again, as one object: the upload contract names `size`."""
        return {"width": self.width, "height": self.height}

    @classmethod
    def of(cls, record: ImageRecord) -> StoredImage:
        return cls(
            id=record.id,
            kind=record.kind,
            sha256=record.sha256,
            format=record.format,
            media_type=record.media_type,
            width=record.width,
            height=record.height,
            bytes=record.bytes,
            source_id=record.source_id,
            url=f"/api/v1/images/{record.id}",
            created_at=record.created_at,
        )


class ProcessRequest(PipelineSpec):
    """The JSON form of /process: a pipeline plus the id of an uploaded image (or an http(s)
    `image_url` to fetch it from)."""

    image_id: str | None = None
    image_url: str | None = Field(None, max_length=4096)
    store: bool = False


class ImageInfo(BaseModel):
    format: str
    width: int
    height: int
    mode: str
    bytes: int
    frames: int
    has_alpha: bool
    exif: dict[str, Any]
    analysis: dict[str, Any]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "Empty, damaged or unreadable image",
        404: "No such image_id",
        413: "Over a size limit (bytes, pixels, frames)",
        415: "Not an image, or a format not accepted",
        422: "A parameter is invalid; `field` names it",
        503: "A dependency is unavailable; retry after `Retry-After` seconds",
    }.items()
}


class TaskProgress(BaseModel):
    done: int = Field(description="items ended: succeeded, failed or cancelled")
    succeeded: int
    failed: int
    total: int


class TaskItemOut(BaseModel):
    index: int
    source_image_id: str
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    result_image_id: str | None = None
    result_url: str | None = Field(None, description="the result image, when the image changed")
    results: list[dict[str, Any]] | None = Field(None, description="AI steps' outputs, in order")
    error: ErrorDetail | None = None
    finished_at: datetime | None = None


class TaskCallbackOut(BaseModel):
    url: str
    state: str | None = Field(
        None, description="null while the task runs; pending, delivered or failed once it ended"
    )
    attempts: int = Field(description="POSTs tried so far")
    error: str | None = Field(None, description="why the last POST failed (kept when given up)")


class TaskOut(BaseModel):
    task_id: str
    status: str = Field(
        description="queued, running, succeeded, failed, partially_failed or cancelled"
    )
    progress: TaskProgress
    url: str
    error: str | None = None
    attempts: int = Field(description="how many times a runner started it")
    pipeline: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    items: list[TaskItemOut]
    callback: TaskCallbackOut | None = Field(
        None, description="the webhook (the batch's callback_url); null when none"
    )

    @classmethod
    def of(cls, view: TaskView) -> TaskOut:
        task = view.task
        return cls(
            task_id=task.id,
            status=task.status,
            progress=TaskProgress(**view.counts()),
            url=f"/api/v1/tasks/{task.id}",
            error=task.error,
            attempts=task.attempts,
            pipeline=json.loads(task.pipeline),
            created_at=task.created_at.replace(tzinfo=task.created_at.tzinfo or UTC),
            started_at=_utc(task.started_at),
            finished_at=_utc(task.finished_at),
            items=[
                TaskItemOut(
                    index=item.index,
                    source_image_id=item.source_image_id,
                    status=item.status,
                    result_image_id=item.result_image_id,
                    result_url=f"/api/v1/images/{item.result_image_id}"
                    if item.result_image_id
                    else None,
                    results=json.loads(item.results) if item.results else None,
                    error=ErrorDetail(code=item.error_code, message=item.error_message or "")
                    if item.error_code
                    else None,
                    finished_at=_utc(item.finished_at),
                )
                for item in view.items
            ],
            callback=TaskCallbackOut(
                url=task.callback_url,
                state=task.callback_state,
                attempts=task.callback_attempts or 0,
                error=task.callback_error,
            )
            if task.callback_url
            else None,
        )


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every one we write is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment

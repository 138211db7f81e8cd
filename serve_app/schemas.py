"""Response bodies, as the OpenAPI document shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, computed_field

from pipelines.spec import PipelineSpec
from serve_app.db import ImageRecord


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
    """The JSON form of /process: a pipeline plus the id of an uploaded image."""

    image_id: str
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

"""What the routes do with images: read a source, run it through the Preprocessor, store.

Blocking database and storage calls run in worker threads; a failure of either is a 503 for the
client, never a 500, and a failed request leaves no row behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from ray.serve.handle import DeploymentHandle
from sqlalchemy.exc import SQLAlchemyError

from pipelines.errors import ServiceError
from pipelines.limits import Limits, check_upload_size
from pipelines.pipeline import ProcessedImage
from pipelines.spec import PipelineSpec
from serve_app.db import Database, ImageRecord, new_id
from serve_app.errors import NotFound, Unavailable
from serve_app.storage import BlobStore, sha256_hex

log = logging.getLogger("ray.serve")
T = TypeVar("T")


async def _call(what: str, fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking dependency call off the event loop; its outage becomes a 503."""
    try:
        return await asyncio.to_thread(fn, *args)
    except ServiceError:
        raise
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("%s unavailable: %r", what, exc)
        raise Unavailable(f"the {what} is unavailable; try again shortly") from None


class ImageService:
    def __init__(
        self, preprocessor: DeploymentHandle[Any], db: Database, store: BlobStore, limits: Limits
    ) -> None:
        self.preprocessor = preprocessor
        self.db = db
        self.store = store
        self.limits = limits

    async def record(self, image_id: str) -> ImageRecord:
        record = await _call("database", self.db.get_image, image_id)
        if record is None:
            raise NotFound(f"no image with id {image_id!r}", field="image_id")
        return record

    async def blob(self, record: ImageRecord) -> bytes:
        return await _call("storage", self.store.get, record.blob_key)

    async def load(self, image_id: str) -> tuple[ImageRecord, bytes]:
        record = await self.record(image_id)
        return record, await self.blob(record)

    async def process(self, data: bytes, spec: PipelineSpec) -> ProcessedImage:
        check_upload_size(len(data), self.limits)  # cheap refusal before the hop
        result: ProcessedImage = await self.preprocessor.process.remote(data, spec)
        return result

    async def info(self, data: bytes) -> dict[str, Any]:
        check_upload_size(len(data), self.limits)
        info: dict[str, Any] = await self.preprocessor.info.remote(data)
        return info

    async def _save(self, data: bytes, record: ImageRecord) -> ImageRecord:
        """Blob first, then the row; undo the blob if the row cannot be written."""
        await _call("storage", self.store.put, record.blob_key, data)
        try:
            return await _call("database", self.db.add, record)
        except Unavailable:
            try:
                if not await asyncio.to_thread(self.db.sha_in_use, record.sha256):
                    await asyncio.to_thread(self.store.delete, record.blob_key)
            except (SQLAlchemyError, OSError):
                log.warning("could not tidy blob %s after a failed insert", record.blob_key)
            raise

    async def upload(self, data: bytes) -> ImageRecord:
        check_upload_size(len(data), self.limits)
        meta: dict[str, Any] = await self.preprocessor.probe.remote(data)
        sha = sha256_hex(data)
        fmt = str(meta["format"])
        record = ImageRecord(
            id=new_id(),
            kind="upload",
            sha256=sha,
            blob_key=self.store.key_for(sha),
            format=fmt,
            media_type=f"image/{fmt}",
            width=int(meta["width"]),
            height=int(meta["height"]),
            bytes=len(data),
        )
        return await self._save(data, record)

    async def store_result(
        self, result: ProcessedImage, spec: PipelineSpec, source_id: str | None
    ) -> ImageRecord:
        sha = sha256_hex(result.data)
        record = ImageRecord(
            id=new_id(),
            kind="result",
            sha256=sha,
            blob_key=self.store.key_for(sha),
            format=result.format,
            media_type=result.media_type,
            width=result.width,
            height=result.height,
            bytes=len(result.data),
            source_id=source_id,
            pipeline=spec.canonical_json(),
        )
        return await self._save(result.data, record)

"""What the routes do with images: read a source, run its pipeline (inline or in the
Preprocessor, as `serve_app.services.image_work` decides), store.

Blocking database and storage calls run in worker threads; a failure of either is a 503 for the
client, never a 500, and a failed request leaves no row behind.

Tenants (serve_app/guards/tenant.py): an upload records the key that stored it, a stored result
its source's owner; `record`, the one door every image id goes through (routes, forms, URL
sources, batches), answers 404 for another key's image. It reads the request's tenant rather
than taking it as an argument because ids reach it by many paths; the runner and the signed
URL API act for no tenant and are not checked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cachetools import LRUCache

from pipelines.errors import InvalidParameter
from pipelines.limits import Limits, check_upload_size
from pipelines.pipeline import ProcessedImage
from pipelines.spec import PipelineSpec
from serve_app.errors import NotFound, Unavailable
from serve_app.guards.tenant import current_owner, owns
from serve_app.observe.metrics import record_cache_write_dropped
from serve_app.observe.tracing import call_span
from serve_app.services.image_work import ImageWork
from serve_app.services.offload import offload
from serve_app.store import blobs
from serve_app.store.db import Database, ImageRecord, new_id
from serve_app.store.result_cache import ResultCache, cache_key
from serve_app.store.storage import BlobStore, sha256_hex

log = logging.getLogger("ray.serve")
T = TypeVar("T")
# Stored images' rows kept per replica. A row never changes and is never deleted (the blob is
# content-addressed), so a kept one cannot go stale; a repeat on a stored image then needs no
# query and no thread hop before the result cache is asked.
RECORDS_KEPT = 4096
# A cache lookup is a query and maybe a blob read, milliseconds; one that waits longer than this
# (its store hung, its pool full of calls that are) is given up and the work done instead.
LOOKUP_WAIT_S = 1.0
# Last-moment preparation of a pipeline that missed the cache, given the source's bytes: the
# spec to run, and whether its result may be kept (the URL API's smart detection, which falls
# back when a detector is down and must not keep that fallback).
Prepare = Callable[[bytes, PipelineSpec], Awaitable[tuple[PipelineSpec, bool]]]
# The spec with the images its steps name (watermarks) and the source's digest folded with
# theirs: Sources.with_assets.
Assets = Callable[[PipelineSpec, str], Awaitable[tuple[PipelineSpec, str]]]


@dataclass
class SourceImage:
    """An image to process. Its sha256 (half of the cache key) is known before its bytes: for a
    stored image it comes from the row, so a cache hit never reads the blob."""

    sha256: str
    image_id: str | None = None
    data: bytes | None = None
    record: ImageRecord | None = None


@dataclass(frozen=True)
class Outcome:
    """A pipeline's result, its cache key (also its ETag) and whether the cache answered."""

    result: ProcessedImage
    key: str
    hit: bool


class ImageService:
    def __init__(
        self,
        work: ImageWork,
        db: Database,
        store: BlobStore,
        limits: Limits,
        cache: ResultCache | None = None,
        max_pending_writes: int = 16,
    ) -> None:
        self.work = work
        self.db = db
        self.store = store
        self.limits = limits
        self.cache = cache
        # Results answered but not yet stored in the cache. Bounded: while storage is slow a
        # result is dropped (and counted) rather than held in memory without end.
        self._saving: set[asyncio.Task[None]] = set()
        self.max_pending_writes = max_pending_writes
        self.cache_writes_dropped = 0
        self._records: LRUCache[str, ImageRecord] = LRUCache(RECORDS_KEPT)  # event loop only
        # What finds the detections a pipeline needs (services/focus.py), set by the builder.
        self.prepare: Prepare | None = None
        # What fetches the images a pipeline's steps name (serve_app/sources), set by the builder.
        self.assets: Assets | None = None

    async def record(self, image_id: str) -> ImageRecord:
        """The image's row, if the request's tenant may use it; else 404, as for no image."""
        record = self._records.get(image_id)
        if record is None:
            record = await offload("database", self.db.get_image, image_id)
            if record is not None:
                self._records[image_id] = record
        if record is None or not owns(current_owner(), record.owner):
            raise NotFound(f"no image with id {image_id!r}", field="image_id")
        return record

    async def blob(self, record: ImageRecord) -> bytes:
        return await offload("storage", self.store.get, record.blob_key)

    async def load(self, image_id: str) -> tuple[ImageRecord, bytes]:
        record = await self.record(image_id)
        return record, await self.blob(record)

    def uploaded(self, data: bytes) -> SourceImage:
        check_upload_size(len(data), self.limits)
        return SourceImage(sha256_hex(data), data=data)

    async def stored(self, image_id: str) -> SourceImage:
        record = await self.record(image_id)
        return SourceImage(record.sha256, image_id=image_id, record=record)

    async def data(self, source: SourceImage) -> bytes:
        """The source's bytes, read from storage the first time they are needed."""
        if source.data is None:
            assert source.record is not None, "a SourceImage has bytes or a record"
            source.data = await self.blob(source.record)
        return source.data

    async def process(self, data: bytes, spec: PipelineSpec) -> ProcessedImage:
        work = self.work.doer(spec, data)  # the span names where it runs (by its price)
        with call_span(work.where, "process"):
            return await work.process(data, spec)

    async def keyed(self, source: SourceImage, spec: PipelineSpec) -> tuple[PipelineSpec, str]:
        """The spec with the images its steps name (watermarks) attached, and its result's
        cache key: the source's digest, folded with theirs so a changed mark is a new result."""
        digest = source.sha256
        if spec.asset_names():
            if self.assets is None:
                raise InvalidParameter("images named by steps cannot be read here", field="image")
            spec, digest = await self.assets(spec, digest)
        return spec, cache_key(digest, spec, self.limits)

    async def process_cached(
        self,
        source: SourceImage | bytes,
        spec: PipelineSpec,
        key: str | None = None,
        *,
        prepare: Prepare | None = None,
    ) -> Outcome:
        """`process`, answered from the result cache when it can be: this replica's memory
        first (no I/O), then the shared store. The cache is an optimisation: when the database
        or storage is down, the work is simply done. `prepare` runs on a miss only; a spec
        that needs detections (a redaction, a detection gravity, smart) gets `self.prepare`
        unless the caller brings its own."""
        if isinstance(source, bytes):
            source = self.uploaded(source)
        if key is None:
            spec, key = await self.keyed(source, spec)
        cache = self.cache
        if cache is not None and cache.enabled:
            if (recent := cache.recent(key)) is not None:
                return Outcome(recent, key, hit=True)
            try:
                cached = await offload("result cache", cache.get, key, wait_s=LOOKUP_WAIT_S)
            except Unavailable:  # down, busy or slow: the work is simply done
                cached = None
            if cached is not None:
                return Outcome(cached, key, hit=True)
        data = await self.data(source)
        keep = True
        if prepare is None and spec.needs_detection:
            prepare = self.prepare
        if prepare is not None:
            spec, keep = await prepare(data, spec)
        result = await self.process(data, spec)
        if keep and cache is not None and cache.enabled:
            cache.remember(key, result)
            self._store_later(cache, key, result)
        return Outcome(result, key, hit=False)

    def _store_later(self, cache: ResultCache, key: str, result: ProcessedImage) -> None:
        """Store a result after the answer goes out; a repeat that reaches another replica
        first just recomputes. Past `max_pending_writes` the write is dropped, not queued."""
        if len(self._saving) >= self.max_pending_writes:
            self._dropped("backlog")
            return
        saving = asyncio.create_task(self._cache_put(cache, key, result))
        self._saving.add(saving)
        saving.add_done_callback(self._saving.discard)

    async def _cache_put(self, cache: ResultCache, key: str, result: ProcessedImage) -> None:
        try:
            await offload("result cache", cache.put, key, result, pool="result cache writes")
        except Unavailable:  # an outage, or its pool full: logged there; a repeat recomputes
            self._dropped("unavailable")

    def _dropped(self, reason: str) -> None:
        self.cache_writes_dropped += 1
        record_cache_write_dropped(reason)

    async def info(self, data: bytes) -> dict[str, Any]:
        with call_span(self.work.where, "info"):
            return await self.work.info(data)

    async def _save(self, data: bytes, record: ImageRecord) -> ImageRecord:
        """Pin, blob, then the row. A blob left without its row (the insert failed) is
        deleted by the sweeper's `blobs.collect` once its pin is old."""
        await offload("database", blobs.pin, self.db, record.sha256)
        await offload("storage", self.store.put, record.blob_key, data)
        return await offload("database", self.db.add, record)

    async def discard(self, records: list[ImageRecord]) -> None:
        """Undo stored images no one was told of (a refused batch's uploads): their rows. Their
        blobs are shared and content-addressed: the sweeper's `blobs.collect` deletes each once
        no row names it and its pin is old (serve_app/store/blobs.py), never under a live row."""
        if not records:
            return
        for record in records:
            self._records.pop(record.id, None)
        try:
            await offload("database", self.db.delete_images, [r.id for r in records])
        except Unavailable:
            log.warning("could not delete %d images of a refused batch", len(records))

    async def upload(self, data: bytes) -> ImageRecord:
        with call_span(self.work.where, "probe"):
            meta = await self.work.probe(data)
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
            owner=current_owner(),
        )
        return await self._save(data, record)

    async def store_result(
        self, result: ProcessedImage, spec: PipelineSpec | str, source_id: str | None
    ) -> ImageRecord:
        sha = sha256_hex(result.data)
        # A result is its source's owner's (the runner stores a task's results for no tenant).
        owner = (await self.record(source_id)).owner if source_id else current_owner()
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
            pipeline=spec if isinstance(spec, str) else spec.canonical_json(),
            owner=owner,
        )
        return await self._save(result.data, record)

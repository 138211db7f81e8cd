"""The result cache: a processed image found again by sha256(code version + admission limits +
input bytes + canonical pipeline).

The pipelines are deterministic, so the key alone says what the result is: it doubles as the
result's ETag, and a client holding it gets 304 without any lookup. An upgrade that changes
an operation's output changes the key (pipelines/version.py), and so does a change to the limits
that admit a source: neither leaves stale results or 304s behind. Entries live in the
`results` table beside a content-addressed blob, independent of `images`, so evicting one never
breaks a stored image's link. Limits: an entry older than `max_age_s` is a miss; `evict()` (run
by the TaskRunner's sweeper) drops expired entries, then the least recently used past
`max_bytes`, and deletes a blob once no row names it (store/blobs.py).

In front of that sits a small in-process tier (`memory_bytes` per replica, LRU): a hot result
is answered without a thread hop, a query or a blob read, which is what makes a hit cheap next to
a ~10 ms thumbnail (bench/RESULTS.md). Results are pure functions of their key, so a copy in
memory can never be stale, only old: it obeys `max_age_s` like a row. A memory hit does not
touch the row's `last_used_at`; the shared LRU then ages a result that only one replica keeps
hot, which costs at worst one recomputation elsewhere.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime, timedelta

from cachetools import Cache, LRUCache, TTLCache
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from pipelines.limits import Limits
from pipelines.pipeline import ProcessedImage
from pipelines.spec import PipelineSpec
from pipelines.version import processing_version
from serve_app.errors import NotFound
from serve_app.settings import CacheSettings
from serve_app.store import blobs
from serve_app.store.db import Database
from serve_app.store.models import CachedResult, utcnow
from serve_app.store.storage import BlobStore, sha256_hex

log = logging.getLogger("ray.serve")


# The limits that decide whether a source is accepted at all. They are part of the key, so a
# hit (or a 304) is only ever given under the limits its result was made under: a source whose
# format is no longer allowed, or that is now over a size limit, is never answered from the
# cache, but processed, and refused. Other limits (a deadline) do not change a result's bytes.
ADMISSION_LIMITS = frozenset({"allowed_formats", "max_pixels", "max_frames", "max_upload_bytes"})


def cache_key(input_sha256: str, spec: PipelineSpec, limits: Limits) -> str:
    """sha256 of what produced a result: the code's version, the admission limits, the input's
    sha256 and the canonical pipeline."""
    parts = (
        processing_version(),
        limits.model_dump_json(include=set(ADMISSION_LIMITS)),
        input_sha256,
        spec.canonical_json(),
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class MemoryTier:
    """Recent results by key (cachetools), least recently used dropped past `max_bytes` of
    image data, and none older than `max_age_s`. Thread-safe: the event loop reads it, worker
    threads fill it."""

    def __init__(self, max_bytes: int, max_age_s: int) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._entries: Cache[str, ProcessedImage] = (
            TTLCache(max(1, max_bytes), ttl=max_age_s, getsizeof=_size)
            if max_age_s
            else LRUCache(max(1, max_bytes), getsizeof=_size)
        )
        self._lock = threading.Lock()

    def get(self, key: str) -> ProcessedImage | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, result: ProcessedImage) -> None:
        # Off at max_bytes 0; and one big result must not flush everything else.
        if self.max_bytes <= 0 or _size(result) > self.max_bytes // 4:
            return
        with self._lock:
            self._entries[key] = result


def _size(result: ProcessedImage) -> int:
    return len(result.data)


class ResultCache:
    def __init__(self, db: Database, store: BlobStore, settings: CacheSettings) -> None:
        self.db = db
        self.store = store
        self.settings = settings
        self.memory = MemoryTier(settings.memory_bytes, settings.max_age_s)

    def recent(self, key: str) -> ProcessedImage | None:
        """The result if this replica holds it in memory: no I/O, safe on the event loop."""
        return self.memory.get(key) if self.enabled else None

    def remember(self, key: str, result: ProcessedImage) -> None:
        if self.enabled:
            self.memory.put(key, result)

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def _fresh_after(self) -> datetime | None:
        if self.settings.max_age_s <= 0:
            return None
        return utcnow() - timedelta(seconds=self.settings.max_age_s)

    def get(self, key: str) -> ProcessedImage | None:
        """The cached result, or None. Blocking: call it from a worker thread."""
        with self.db.session() as session, session.begin():
            query = select(CachedResult).where(CachedResult.key == key)
            cutoff = self._fresh_after()
            if cutoff is not None:
                query = query.where(CachedResult.created_at >= cutoff)
            entry = session.scalars(query).first()
            if entry is None:
                return None
            session.execute(
                update(CachedResult)
                .where(CachedResult.key == key)
                .values(hits=CachedResult.hits + 1, last_used_at=utcnow())
            )
        try:
            data = self.store.get(entry.blob_key)
        except NotFound:  # evicted under our feet: a miss, not an error
            return None
        found = ProcessedImage(
            data=data,
            format=entry.format,
            media_type=entry.media_type,
            width=entry.width,
            height=entry.height,
            source_format=entry.source_format,
            source_width=entry.source_width,
            source_height=entry.source_height,
            elapsed_ms=0.0,
        )
        self.remember(key, found)
        return found

    def put(self, key: str, result: ProcessedImage) -> None:
        """Blob first, then the row (a row never names a missing blob). Blocking."""
        sha = sha256_hex(result.data)
        blob_key = self.store.key_for(sha)
        blobs.pin(self.db, sha)  # before the blob: no release deletes it under this row
        self.store.put(blob_key, result.data)
        entry = CachedResult(
            key=key,
            sha256=sha,
            blob_key=blob_key,
            format=result.format,
            media_type=result.media_type,
            source_format=result.source_format,
            source_width=result.source_width,
            source_height=result.source_height,
            width=result.width,
            height=result.height,
            bytes=len(result.data),
            hits=0,
        )
        try:
            with self.db.session() as session, session.begin():
                session.merge(entry)  # an expired entry under the same key is replaced
        except IntegrityError:
            pass  # another replica cached the same result first

    def evict(self) -> int:
        """Drop expired entries, then the least recently used past max_bytes. Blocking."""
        doomed: list[CachedResult] = []
        with self.db.session() as session:
            cutoff = self._fresh_after()
            if cutoff is not None:
                doomed += session.scalars(
                    select(CachedResult).where(CachedResult.created_at < cutoff)
                ).all()
            total = session.scalar(select(func.coalesce(func.sum(CachedResult.bytes), 0))) or 0
            total -= sum(entry.bytes for entry in doomed)
            if total > self.settings.max_bytes:
                oldest = session.scalars(
                    select(CachedResult).order_by(CachedResult.last_used_at)
                ).yield_per(200)
                seen = {entry.key for entry in doomed}
                for entry in oldest:
                    if total <= self.settings.max_bytes:
                        break
                    if entry.key not in seen:
                        doomed.append(entry)
                        total -= entry.bytes
        for entry in doomed:
            with self.db.session() as session, session.begin():
                session.execute(delete(CachedResult).where(CachedResult.key == entry.key))
            blobs.release(self.db, self.store, entry.sha256)
        if doomed:
            log.info("result cache: evicted %d entries", len(doomed))
        return len(doomed)

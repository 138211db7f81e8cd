"""The services a replica builds at start from the settings: the database (migrated when
DATABASE_AUTO_MIGRATE), blob storage, the result cache, and the image and AI services over the
deployment handles it was given. The Ingress and the TaskRunner build the same ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.serve.handle import DeploymentHandle

from pipelines.limits import Limits, apply_live
from serve_app.services.ai import AiService
from serve_app.services.focus import FocusFinder
from serve_app.services.image_work import ImageWork, InlineFirst, LocalImageWork, RemoteImageWork
from serve_app.services.images import ImageService
from serve_app.settings import Settings
from serve_app.store.db import Database
from serve_app.store.result_cache import ResultCache
from serve_app.store.storage import BlobStore


def build_services(
    settings: Settings,
    preprocessor: DeploymentHandle[Any],
    detector: DeploymentHandle[Any],
    ocr: DeploymentHandle[Any],
    faces: DeploymentHandle[Any],
    *,
    inline: bool = False,
) -> tuple[ImageService, AiService]:
    """`inline`: image pipelines run in this process (PROCESSING_INLINE, for the ingress);
    otherwise they go to the Preprocessor. Every service gets the same Limits object (the
    replica's live limits: `reconfigure_limits`)."""
    db = Database(settings.database_url)
    if settings.database.auto_migrate:
        db.migrate()
    store = BlobStore(settings.storage_url, s3_endpoint_url=settings.storage.s3_endpoint_url)
    limits = settings.limits.to_limits()
    cache = ResultCache(db, store, settings.cache)
    remote = RemoteImageWork(preprocessor, limits)
    work: ImageWork = remote
    if inline:
        local = LocalImageWork(limits, settings.processing.threads, settings.processing.max_queued)
        work = InlineFirst(local, remote)
    images = ImageService(work, db, store, limits, cache, settings.cache.max_pending_writes)
    ai = AiService(preprocessor, detector, ocr, faces, limits)
    images.prepare = FocusFinder(ai, limits)  # batches' redactions find their faces too
    return images, ai


def reconfigure_limits(
    images: ImageService, settings: Settings, config: Mapping[str, Any]
) -> Limits:
    """Apply `user_config: {limits: {...}}` over the settings' limits to the replica's one
    Limits object, which its image work, AI and task services all hold."""
    return apply_live(images.limits, settings.limits.to_limits(), config.get("limits"))

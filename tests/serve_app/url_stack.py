"""The URL API in this process: the FastAPI app over ASGI with real services behind it (SQLite
and a blob folder, the Preprocessor's and FaceDetector's own classes through in-process
handles), a source folder, and the settings a test chooses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from deployments.face_detector import FaceDetector
from deployments.ocr_reader import OcrReader
from deployments.preprocessor import Preprocessor
from pipelines.limits import Limits
from serve_app import context
from serve_app.guards import breakers
from serve_app.guards.guard import Guard
from serve_app.ingress import api
from serve_app.security import ApiKeys
from serve_app.services.ai import AiService
from serve_app.services.image_work import LocalImageWork
from serve_app.services.images import ImageService
from serve_app.services.tasks import TaskService
from serve_app.services.urls import UrlService
from serve_app.settings import Settings, SourceSettings, TaskSettings, UrlSettings
from serve_app.sources import Sources
from serve_app.sources.addresses import AddressPolicy
from serve_app.sources.http import Resolve
from serve_app.store.db import Database
from serve_app.store.result_cache import ResultCache
from serve_app.store.storage import BlobStore
from serve_app.store.task_store import TaskStore
from tests.serve_app.inprocess import InProcessHandle

KEY = "MY_SECURE_KEY"


@dataclass
class UrlStack:
    http: httpx.AsyncClient
    sources: Path
    images: ImageService
    service: UrlService
    faces: InProcessHandle
    detector: Any
    ocr: InProcessHandle


class NoDetector:
    """A YoloDetector handle whose model never loaded (as with no weights offline)."""

    class _Method:
        def remote(self, *args: Any, **kwargs: Any) -> Any:
            from pipelines.errors import ModelUnavailable

            async def fail() -> Any:
                raise ModelUnavailable("no weights")

            return fail()

    def __getattr__(self, name: str) -> Any:
        return self._Method()


@asynccontextmanager
async def url_stack(
    tmp_path: Path,
    *,
    url: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    guard: Guard | None = None,
    resolve: Resolve | None = None,
    policy: AddressPolicy | None = None,
    detector: Any = None,
    cache: bool = False,
    limits: Limits | None = None,
) -> AsyncIterator[UrlStack]:
    limits = limits or Limits()
    sources_dir = tmp_path / "sources"
    sources_dir.mkdir(exist_ok=True)
    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.migrate()
    store = BlobStore(f"file://{tmp_path}/blobs")
    settings = Settings(
        url=UrlSettings(**{"signing_keys": [KEY], "allow_unsafe": True, **(url or {})}),
        source=SourceSettings(**{"url": f"file://{sources_dir}", **(source or {})}),
        cache={"enabled": cache},  # type: ignore[arg-type]
    )
    result_cache = ResultCache(db, store, settings.cache) if cache else None
    images = ImageService(LocalImageWork(limits, threads=2), db, store, limits, result_cache)
    pre, faces = InProcessHandle(Preprocessor), InProcessHandle(FaceDetector)
    detector = detector if detector is not None else NoDetector()
    ocr = InProcessHandle(OcrReader)
    ai = AiService(pre, detector, ocr, faces, limits)  # type: ignore[arg-type]
    context.set_services(images, ai, TaskService(images, TaskStore(db), None, TaskSettings()))  # type: ignore[arg-type]
    srcs = Sources(settings.source, settings.source_url, images, resolve=resolve, policy=policy)
    service = UrlService(images, ai, srcs, settings)
    images.prepare = service.focus  # as build_services does
    images.assets = srcs.with_assets  # as the ingress does
    context.set_url_service(service)
    context.set_guard(guard or Guard(ApiKeys({}), None))
    breakers.reset_all()
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as http:
        try:
            yield UrlStack(http, sources_dir, images, service, faces, detector, ocr)
        finally:
            await srcs.close()
            db.engine.dispose()

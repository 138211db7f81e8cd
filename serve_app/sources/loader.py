"""Where a URL's IMAGE comes from, in this order:

1. `http://` / `https://` (also URL-encoded): the HTTP loader, when SOURCE_HTTP_ENABLED;
2. the id of an upload (POST /api/v1/upload): its stored bytes;
3. otherwise a key under the source store (SOURCE_URL), as thumbor's file or S3 loader.

Fetched sources (HTTP, and keys in a remote bucket) are kept by name for SOURCE_CACHE_TTL_S.
Every fetch is counted in `ray_image_source_fetches_total{loader,outcome}` and timed in
`ray_image_source_fetch_duration_seconds{loader}`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable

from pipelines.errors import ServiceError, TooLarge
from pipelines.spec import PipelineSpec
from serve_app.errors import NotFound
from serve_app.observe.metrics import record_source_fetch
from serve_app.services.images import ImageService, SourceImage
from serve_app.services.offload import offload
from serve_app.settings import SourceSettings
from serve_app.sources.addresses import AddressPolicy
from serve_app.sources.cache import Fetched, SourceCache
from serve_app.sources.errors import SourceNotFound, SourceRefused, SourceTimeout
from serve_app.sources.http import HttpLoader, Resolve
from serve_app.sources.store import SourceStore
from serve_app.store.storage import sha256_hex

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_REMOTE = re.compile(r"^https?://", re.IGNORECASE)


def outcome_of(exc: BaseException) -> str:
    if isinstance(exc, SourceNotFound | NotFound):
        return "not_found"
    if isinstance(exc, SourceRefused):
        return "refused"
    if isinstance(exc, TooLarge):
        return "too_large"
    if isinstance(exc, SourceTimeout):
        return "timeout"
    return "error"


class Sources:
    def __init__(
        self,
        settings: SourceSettings,
        store_url: str,
        images: ImageService,
        *,
        resolve: Resolve | None = None,
        policy: AddressPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.images = images
        self.store = SourceStore(
            store_url, s3_endpoint_url=settings.s3_endpoint_url, max_bytes=settings.max_bytes
        )
        self.http = HttpLoader(settings, resolve, policy) if settings.http_enabled else None
        self.cache = SourceCache(settings.cache_ttl_s, settings.cache_bytes)

    async def load(self, image: str) -> SourceImage:
        """The source named `image` (its bytes read now, or for an upload when needed)."""
        if _REMOTE.match(image):
            if self.http is None:
                raise SourceNotFound(
                    "http(s) sources are not fetched here (SOURCE_HTTP_ENABLED)", field="image"
                )
            http = self.http
            return await self._fetched("http", image, lambda: http.fetch(image), keep=True)
        if _UPLOAD_ID.match(image):
            started = time.monotonic()
            try:
                source = await self.images.stored(image)
            except NotFound:
                pass  # not an upload's id: perhaps a key that looks like one
            else:
                record_source_fetch("upload", "ok", time.monotonic() - started)
                return source
        loader = self.store.loader
        return await self._fetched(
            loader,
            image,
            lambda: offload("source store", self._read, image),
            keep=loader != "file",  # a local file is cheaper to read again than to keep
        )

    def _read(self, key: str) -> Fetched:
        """Read and hash in the same worker thread: one hop, and the hash off the loop."""
        data = self.store.get(key)
        return Fetched(data, sha256_hex(data))

    async def data(self, image: str) -> bytes:
        """The bytes of the source named `image` (a watermark, say)."""
        return await self.images.data(await self.load(image))

    async def with_assets(self, spec: PipelineSpec, digest: str) -> tuple[PipelineSpec, str]:
        """The spec with the other images its steps name (watermarks), and the digest that
        keys its result: the source's `digest` folded with theirs, so a changed watermark is
        a new result. Every API that runs a pipeline (URL, /process, batches) comes here."""
        names = spec.asset_names()
        if not names:
            return spec, digest
        assets = {name: await self.data(name) for name in names}
        folded = hashlib.sha256(digest.encode())
        for name in names:
            folded.update(json.dumps(name).encode())
            folded.update(hashlib.sha256(assets[name]).digest())
        return spec.with_assets(assets), folded.hexdigest()

    async def _fetched(
        self,
        loader: str,
        name: str,
        read: Callable[[], Awaitable[bytes | Fetched]],
        *,
        keep: bool,
    ) -> SourceImage:
        started = time.monotonic()

        async def fetch() -> Fetched:
            data = await read()
            return data if isinstance(data, Fetched) else Fetched(data, sha256_hex(data))

        try:
            if keep:
                fetched, hit = await self.cache.get(f"{loader}:{name}", fetch)
            else:
                fetched, hit = await fetch(), False
        except ServiceError as exc:
            record_source_fetch(loader, outcome_of(exc), time.monotonic() - started)
            raise
        record_source_fetch(loader, "cached" if hit else "ok", time.monotonic() - started)
        return SourceImage(fetched.sha256, data=fetched.data)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()

"""The result cache on both stacks: a repeat does no image work and returns the same bytes;
age and size limits evict; an outage of the cache's store never fails a request."""

from __future__ import annotations

import asyncio
import time

import pytest

from deployments.preprocessor import Preprocessor
from pipelines.errors import TooLarge, UnsupportedFormat
from pipelines.limits import Limits
from pipelines.pipeline import ProcessedImage
from pipelines.spec import PipelineSpec
from serve_app.errors import NotFound
from serve_app.services.image_work import LocalImageWork, RemoteImageWork
from serve_app.services.images import ImageService
from serve_app.settings import CacheSettings
from serve_app.store import blobs
from serve_app.store.result_cache import MemoryTier, ResultCache, cache_key
from serve_app.store.storage import sha256_hex
from tests.conftest import encode, photo
from tests.serve_app.conftest import Backend
from tests.serve_app.inprocess import InProcessHandle

SPEC = PipelineSpec.model_validate(
    {"steps": [{"op": "resize", "width": 64}, {"op": "filter", "name": "sharpen"}]}
)


def _service(backend: Backend, **cache: object) -> tuple[ImageService, InProcessHandle]:
    handle = InProcessHandle(Preprocessor)
    settings = CacheSettings.model_validate(cache)
    result_cache = ResultCache(backend.db, backend.store, settings)
    work = RemoteImageWork(handle, Limits())  # type: ignore[arg-type]
    return ImageService(work, backend.db, backend.store, Limits(), result_cache), handle


async def _settle(service: ImageService) -> None:
    await asyncio.gather(*service._saving)


async def test_a_repeat_does_no_image_work_and_returns_the_same_bytes(backend: Backend) -> None:
    service, handle = _service(backend)
    data = encode(photo("coffee"), "JPEG")
    first = await service.process_cached(data, SPEC)
    await _settle(service)
    second = await service.process_cached(data, SPEC)
    assert (first.hit, second.hit) == (False, True)
    assert handle.calls["process"] == 1  # the repeat never reached the Preprocessor
    assert second.result.data == first.result.data
    assert second.key == first.key == cache_key(sha256_hex(data), SPEC, service.limits)
    assert (second.result.width, second.result.source_format) == (64, "jpeg")
    other = PipelineSpec.model_validate({"steps": [{"op": "resize", "width": 65}]})
    assert not (await service.process_cached(data, other)).hit
    assert handle.calls["process"] == 2


async def test_entries_past_max_age_are_misses(backend: Backend) -> None:
    service, handle = _service(backend, max_age_s=1)
    data = encode(photo("chelsea"), "PNG")
    await service.process_cached(data, SPEC)
    await _settle(service)
    assert (await service.process_cached(data, SPEC)).hit
    time.sleep(1.2)
    assert not (await service.process_cached(data, SPEC)).hit
    assert service.cache is not None and service.cache.evict() == 1
    assert handle.calls["process"] == 2


async def test_size_limit_evicts_least_recently_used_and_their_blobs(backend: Backend) -> None:
    service, _ = _service(backend)
    cache = service.cache
    assert cache is not None
    outcomes = []
    for name in ("coffee", "chelsea", "astronaut"):
        outcomes.append(await service.process_cached(encode(photo(name), "JPEG"), SPEC))
        await _settle(service)
    assert cache.get(outcomes[0].key) is not None  # used again: now the newest
    sizes = [len(o.result.data) for o in outcomes]
    cache.settings = CacheSettings(max_bytes=sizes[0] + max(sizes[1:]))
    assert cache.evict() == 1
    assert cache.get(outcomes[1].key) is None  # the least recently used went
    gone = backend.store.key_for(sha256_hex(outcomes[1].result.data))
    # Its blob was pinned moments ago (a writer may be on its way): it goes after the grace.
    assert backend.store.exists(gone)
    time.sleep(0.05)
    assert blobs.collect(backend.db, backend.store, limit=10, grace_s=0) == 1
    assert not backend.store.exists(gone)
    assert cache.get(outcomes[0].key) is not None and cache.get(outcomes[2].key) is not None


async def test_a_dead_cache_store_still_answers(backend: Backend) -> None:
    service, handle = _service(backend)
    backend.db.engine.dispose()
    service.cache.db = type(backend.db)("postgresql+psycopg://u@127.0.0.1:1/x?connect_timeout=1")  # type: ignore[union-attr]
    data = encode(photo("coffee"), "JPEG")
    outcome = await service.process_cached(data, SPEC)
    await _settle(service)
    assert not outcome.hit and outcome.result.width == 64
    assert handle.calls["process"] == 1


async def test_a_hot_result_is_answered_from_memory_without_the_database(
    backend: Backend,
) -> None:
    service, handle = _service(backend)
    data = encode(photo("coffee"), "JPEG")
    first = await service.process_cached(data, SPEC)
    assert service.cache is not None
    service.cache.db = type(backend.db)("postgresql+psycopg://u@127.0.0.1:1/x?connect_timeout=1")
    repeat = await service.process_cached(data, SPEC)  # before the store even settled
    assert repeat.hit and repeat.result.data == first.result.data
    assert handle.calls["process"] == 1
    await _settle(service)  # the write-behind to the dead database fails quietly


async def test_without_a_memory_tier_every_hit_goes_to_the_store(backend: Backend) -> None:
    service, handle = _service(backend, memory_bytes=0)
    data = encode(photo("chelsea"), "JPEG")
    await service.process_cached(data, SPEC)
    await _settle(service)
    assert service.cache is not None and not service.cache.memory._entries
    assert (await service.process_cached(data, SPEC)).hit
    assert handle.calls["process"] == 1


async def test_a_stored_image_is_not_read_when_the_cache_answers(backend: Backend) -> None:
    service, handle = _service(backend)
    record = await service.upload(encode(photo("astronaut"), "JPEG"))
    first = await service.process_cached(await service.stored(record.id), SPEC)
    await _settle(service)
    backend.store.delete(record.blob_key)  # any read of the source would now fail
    fresh, _ = _service(backend)  # another replica: nothing in its memory
    for replica in (service, fresh):
        again = await replica.process_cached(await replica.stored(record.id), SPEC)
        assert again.hit and again.key == first.key
        assert again.key == cache_key(record.sha256, SPEC, replica.limits)
    assert handle.calls["process"] == 1


async def test_a_stored_images_row_is_queried_once_per_replica(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, _ = _service(backend)
    record = await service.upload(encode(photo("coffee"), "JPEG"))
    queried: list[str] = []
    get_image = backend.db.get_image
    monkeypatch.setattr(backend.db, "get_image", lambda i: queried.append(i) or get_image(i))
    for _ in range(3):
        assert (await service.stored(record.id)).sha256 == record.sha256
    missing = "0" * 32
    for _ in range(2):
        with pytest.raises(NotFound):
            await service.stored(missing)
    assert queried == [record.id, missing, missing]  # a miss is asked again: it may appear


def test_the_memory_tier_keeps_the_most_recently_used_within_its_bytes() -> None:
    result = ProcessedImage(b"x" * 100, "jpeg", "image/jpeg", 1, 1, "jpeg", 1, 1, 0.0)
    tier = MemoryTier(max_bytes=450, max_age_s=0)
    for key in "abcd":
        tier.put(key, result)
    assert tier.get("a") is not None  # used: now the newest
    tier.put("e", result)  # 500 bytes: the least recently used ("b") goes
    assert tier.get("b") is None
    assert all(tier.get(k) is not None for k in "acde")
    tier.put("big", ProcessedImage(b"x" * 200, "jpeg", "image/jpeg", 1, 1, "jpeg", 1, 1, 0.0))
    assert tier.get("big") is None  # over a quarter of the tier: not kept


async def test_new_code_is_not_answered_with_results_of_the_old(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade that changes an operation's output (our version bumped, or another
    Pillow), the old results are neither served nor revalidated (their key is not the ETag)."""
    import PIL

    import pipelines.version

    service, _ = _service(backend)
    data = encode(photo("coffee"), "JPEG")
    old = await service.process_cached(data, SPEC)
    await _settle(service)
    keys = {old.key}
    for module, name, value in (
        (pipelines.version, "PROCESSING_VERSION", pipelines.version.PROCESSING_VERSION + 1),
        (PIL, "__version__", "99.0.0"),
    ):
        monkeypatch.setattr(module, name, value)
        upgraded, handle = _service(backend)  # a replica running the new code: empty memory
        again = await upgraded.process_cached(data, SPEC)
        assert not again.hit and again.key not in keys
        assert handle.calls["process"] == 1  # the work was done again
        keys.add(again.key)
        await _settle(upgraded)


def _inline(backend: Backend, limits: Limits) -> ImageService:
    """A replica whose image work runs in process under `limits`."""
    cache = ResultCache(backend.db, backend.store, CacheSettings())
    return ImageService(LocalImageWork(limits, threads=1), backend.db, backend.store, limits, cache)


async def test_a_hit_honours_the_limits_in_force(backend: Backend) -> None:
    """A result cached under looser limits is not served once its source's format is no
    longer allowed or its pixels are over the limit: the request is refused as a fresh one."""
    png = encode(photo("chelsea"), "PNG")  # 451 x 300
    before = _inline(backend, Limits())
    first = await before.process_cached(png, SPEC)
    await _settle(before)
    assert (await _inline(backend, Limits()).process_cached(png, SPEC)).hit
    with pytest.raises(UnsupportedFormat):
        await _inline(backend, Limits(allowed_formats=("JPEG",))).process_cached(png, SPEC)
    with pytest.raises(TooLarge):
        await _inline(backend, Limits(max_pixels=451 * 300 - 1)).process_cached(png, SPEC)
    # Back under the limits it was made under: the same result, from the cache.
    again = await _inline(backend, Limits()).process_cached(png, SPEC)
    assert again.hit and again.key == first.key

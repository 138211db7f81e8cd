"""What every image route shares: where the image comes from and how the result goes back."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, File, Form, Header, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile as StarletteUploadFile

from pipelines.encode import OutputFormat
from pipelines.errors import InvalidParameter
from pipelines.pipeline import ProcessedImage
from pipelines.spec import PipelineSpec, Step, validated
from serve_app import context
from serve_app.schemas import ERROR_RESPONSES, StoredImage
from serve_app.services.images import ImageService, Outcome, Prepare, SourceImage
from serve_app.store.result_cache import cache_key

IMAGE_MEDIA_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/avif",
    "image/gif",
    "image/bmp",
    "image/tiff",
)

IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The result image (unless store=true)",
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}} for media in IMAGE_MEDIA_TYPES
        },
    },
    201: {"model": StoredImage, "description": "Stored result (store=true)"},
    **ERROR_RESPONSES,
}


# Dependencies are async: FastAPI runs a plain `def` one in a worker thread, a hop that cost
# about 0.4 ms of CPU per request under load (bench/RESULTS.md, where the time goes).
async def images() -> ImageService:
    return context.image_service()


@dataclass
class ImageInput:
    file: StarletteUploadFile | None
    image_id: str | None
    image_url: str | None = None


async def image_input(
    file: UploadFile | None = File(None, description="the image; or give image_id or image_url"),
    image_id: str | None = Form(None, description="id of an uploaded image", max_length=64),
    image_url: str | None = Form(
        None,
        description="an http(s) URL to fetch the image from (SOURCE_HTTP_ENABLED), with the "
        "URL API's SSRF protection",
        max_length=4096,
    ),
) -> ImageInput:
    return ImageInput(file=file, image_id=image_id, image_url=image_url)


@dataclass
class OutputOptions:
    format: OutputFormat | None
    quality: int | None
    store: bool
    if_none_match: str | None = None


async def output_options(
    format: OutputFormat | None = Form(None, description="jpeg, png, webp, avif, gif, bmp or tiff"),
    quality: int | None = Form(None, ge=1, le=100, description="jpeg and webp"),
    store: bool = Form(False, description="keep the result and answer JSON with its id"),
    if_none_match: str | None = Header(None, description="an ETag from an earlier result"),
) -> OutputOptions:
    return OutputOptions(format=format, quality=quality, store=store, if_none_match=if_none_match)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return etag in tags or "*" in tags


def _one_source(source: ImageInput) -> None:
    given = [source.file is not None, bool(source.image_id), bool(source.image_url)]
    if sum(given) > 1:
        raise InvalidParameter(
            "give one of file, image_id or image_url, not several", field="image_id"
        )
    if not any(given):
        raise InvalidParameter(
            "an image is required: send file, image_id or image_url", field="file"
        )


async def fetch_url(url: str) -> SourceImage:
    """An `image_url` source: fetched by the URL API's HTTP loader (same protections)."""
    if not re.match(r"^https?://", url, re.IGNORECASE):
        raise InvalidParameter("image_url must be an http or https URL", field="image_url")
    return await context.url_service().sources.load(url)


async def read_input(source: ImageInput, service: ImageService) -> tuple[bytes, str | None]:
    """The image's bytes and, when it was uploaded earlier, its id."""
    _one_source(source)
    if source.file is not None:
        return await source.file.read(), None
    if source.image_url:
        return await service.data(await fetch_url(source.image_url)), None
    assert source.image_id
    _, data = await service.load(source.image_id)
    return data, source.image_id


async def resolve_input(source: ImageInput, service: ImageService) -> SourceImage:
    """The image to process; a stored one's bytes are read only if the cache cannot answer."""
    _one_source(source)
    if source.file is not None:
        return service.uploaded(await source.file.read())
    if source.image_url:
        return await fetch_url(source.image_url)
    assert source.image_id
    return await service.stored(source.image_id)


def parse_json(text: str | bytes, field: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise InvalidParameter(f"{field} is not valid JSON", field=field) from None


M = TypeVar("M", bound=BaseModel)


def build(model: type[M], **params: Any) -> M:
    """Form fields as a step or parameter model; unset fields take the model's defaults and
    cross-field rules fail with a 422 naming the field."""
    return validated(model, {k: v for k, v in params.items() if v is not None})


# Results are a pure function of (input bytes, pipeline): a client may keep them, but must
# revalidate, since the same request with another image is another resource.
RESULT_CACHE_CONTROL = "private, no-cache"


def image_response(result: ProcessedImage, outcome: Outcome | None = None) -> Response:
    headers = {
        "X-Image-Width": str(result.width),
        "X-Image-Height": str(result.height),
        "X-Source-Format": result.source_format,
        "X-Processing-Ms": f"{result.elapsed_ms:.1f}",
        "Content-Disposition": f'inline; filename="result.{result.format}"',
    }
    if outcome is not None:
        headers |= {
            "ETag": f'"{outcome.key}"',
            "X-Cache": "hit" if outcome.hit else "miss",
            "Cache-Control": RESULT_CACHE_CONTROL,
        }
    return Response(content=result.data, media_type=result.media_type, headers=headers)


def stored_response(stored: StoredImage) -> JSONResponse:
    return JSONResponse(
        stored.model_dump(mode="json"), status_code=201, headers={"Location": stored.url}
    )


async def run_steps(
    service: ImageService,
    source: ImageInput,
    steps: list[Step],
    output: OutputOptions,
) -> Response:
    spec = PipelineSpec(steps=steps, format=output.format, quality=output.quality)
    image = await resolve_input(source, service)
    return await run_spec(
        service, image, spec, store=output.store, if_none_match=output.if_none_match
    )


async def run_spec(
    service: ImageService,
    image: SourceImage,
    spec: PipelineSpec,
    *,
    store: bool,
    if_none_match: str | None = None,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    prepare: Prepare | None = None,
) -> Response:
    """Run (or find in the cache) a pipeline. Its result's ETag is its cache key, known before
    any work: a client that already holds it gets 304 at the cost of one hash (of the upload;
    for a stored image, none). The URL API comes through here too, with its own `key` (the
    source's digest folded with its watermarks'), its `headers` (Cache-Control for a CDN,
    Vary) and its `prepare`."""
    started = time.monotonic()
    key = key or cache_key(image.sha256, spec)
    if not store and etag_matches(if_none_match, f'"{key}"'):
        answer = {"ETag": f'"{key}"', "Cache-Control": RESULT_CACHE_CONTROL, **(headers or {})}
        return Response(status_code=304, headers=answer)
    # A pipeline that asks for regions of interest (`detect`: faces, objects) gets them from
    # the detectors on a miss, as the URL API's smart does.
    if prepare is None and spec.detect:
        prepare = context.url_service().focus
    outcome = await service.process_cached(image, spec, key, prepare=prepare)
    result = outcome.result
    if not store:
        response = image_response(result, outcome)
        response.headers.update(headers or {})
        return response
    record = await service.store_result(result, spec, image.image_id)
    response = stored_response(StoredImage.of(record))
    response.headers["X-Processing-Ms"] = f"{(time.monotonic() - started) * 1000:.1f}"
    return response


# Route parameters every image endpoint shares.
Source = Annotated[ImageInput, Depends(image_input)]
Output = Annotated[OutputOptions, Depends(output_options)]
Images = Annotated[ImageService, Depends(images)]

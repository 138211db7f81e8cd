"""What every image route shares: where the image comes from and how the result goes back."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, File, Form, Header, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.datastructures import FormData
from starlette.datastructures import UploadFile as StarletteUploadFile

from pipelines.encode import OutputFormat
from pipelines.errors import InvalidParameter
from pipelines.pipeline import ProcessedImage
from pipelines.spec import PipelineSpec, Step, validated
from serve_app import context
from serve_app.errors import BadRequest
from serve_app.schemas import ERROR_RESPONSES, StoredImage
from serve_app.services.images import ImageService, Outcome, Prepare, SourceImage

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


# An entity tag (RFC 9110 8.8.3): an optional weakness prefix and a quoted opaque part, which
# may itself contain commas; a list is tags separated by commas, whitespace and empty elements.
_ENTITY_TAG = re.compile(r'\s*(?:(?:W/)?("[\x21\x23-\x7e\x80-\xff]*"))?\s*(?:,|$)')


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match header matches `etag` (RFC 9110 13.1.2): `*` matches any
    current representation; otherwise any listed tag under the weak comparison (W/ ignored on
    either side). A malformed header matches nothing, so the full answer is sent."""
    if not header or not header.strip():
        return False
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    position = 0
    while position < len(header):
        found = _ENTITY_TAG.match(header, position)
        if found is None or found.end() == position:
            return False
        if found.group(1) == wanted:
            return True
        position = found.end()
    return False


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


async def read_form(request: Request, **limits: int) -> FormData:
    """The multipart body of a route that reads its form by hand; a parse failure is a 400."""
    try:
        return await request.form(**limits)
    except Exception:  # noqa: BLE001 - any multipart parse failure is the client's
        raise BadRequest("the multipart body could not be parsed") from None


async def json_field(form: FormData, name: str, model: type[M]) -> M:
    """A multipart field holding JSON (`pipeline`), as text or as a file part, validated as
    `model`: 422 naming the field when it is missing, not JSON, or not valid."""
    raw = form.get(name)
    if raw is None:
        raise InvalidParameter(f"{name} is required", field=name)
    text = await raw.read() if isinstance(raw, StarletteUploadFile) else raw
    return validated(model, parse_json(text, name))


def build(model: type[M], /, **params: Any) -> M:
    """Form fields as a step or parameter model; unset fields take the model's defaults and
    cross-field rules fail with a 422 naming the field."""
    return validated(model, {k: v for k, v in params.items() if v is not None})


# Results are a pure function of (input bytes, pipeline): a client may keep them, but must
# revalidate, since the same request with another image is another resource.
RESULT_CACHE_CONTROL = "private, no-cache"


def image_response(
    result: ProcessedImage, outcome: Outcome | None = None, processing_ms: float | None = None
) -> Response:
    """The result image. X-Processing-Ms: `processing_ms`, what this request cost the service
    (the work, or finding the result in the cache), else the pipeline's own time."""
    ms = result.elapsed_ms if processing_ms is None else processing_ms
    headers = {
        "X-Image-Width": str(result.width),
        "X-Image-Height": str(result.height),
        "X-Source-Format": result.source_format,
        "X-Processing-Ms": f"{ms:.1f}",
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
    if key is None:
        spec, key = await service.keyed(image, spec)
    if not store and etag_matches(if_none_match, f'"{key}"'):
        answer = {"ETag": f'"{key}"', "Cache-Control": RESULT_CACHE_CONTROL, **(headers or {})}
        return Response(status_code=304, headers=answer)
    # A pipeline that needs detections (smart, a redaction, a detection gravity) gets them
    # on a miss from the service's FocusFinder (ImageService.prepare).
    outcome = await service.process_cached(image, spec, key, prepare=prepare)
    result = outcome.result
    if not store:
        # A hit's own elapsed_ms is the original work's (from memory) or 0.0 (from the store):
        # the figure that matters is what this request took.
        response = image_response(result, outcome, (time.monotonic() - started) * 1000)
        response.headers.update(headers or {})
        return response
    record = await service.store_result(result, spec, image.image_id)
    response = stored_response(StoredImage.of(record))
    response.headers["X-Processing-Ms"] = f"{(time.monotonic() - started) * 1000:.1f}"
    response.headers["X-Cache"] = "hit" if outcome.hit else "miss"
    return response


# Route parameters every image endpoint shares.
Source = Annotated[ImageInput, Depends(image_input)]
Output = Annotated[OutputOptions, Depends(output_options)]
Images = Annotated[ImageService, Depends(images)]

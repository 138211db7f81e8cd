"""What every image route shares: where the image comes from and how the result goes back."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile as StarletteUploadFile

from pipelines.encode import OutputFormat
from pipelines.errors import InvalidParameter
from pipelines.pipeline import ProcessedImage
from pipelines.spec import PipelineSpec, Step, validated
from serve_app import context
from serve_app.images import ImageService
from serve_app.schemas import ERROR_RESPONSES, StoredImage

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff")

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


def images() -> ImageService:
    return context.image_service()


@dataclass
class ImageInput:
    file: StarletteUploadFile | None
    image_id: str | None


def image_input(
    file: UploadFile | None = File(None, description="the image; or give image_id"),
    image_id: str | None = Form(None, description="id of an uploaded image", max_length=64),
) -> ImageInput:
    return ImageInput(file=file, image_id=image_id)


@dataclass
class OutputOptions:
    format: OutputFormat | None
    quality: int | None
    store: bool


def output_options(
    format: OutputFormat | None = Form(None, description="jpeg, png, webp, bmp or tiff"),
    quality: int | None = Form(None, ge=1, le=100, description="jpeg and webp"),
    store: bool = Form(False, description="keep the result and answer JSON with its id"),
) -> OutputOptions:
    return OutputOptions(format=format, quality=quality, store=store)


async def read_input(source: ImageInput, service: ImageService) -> tuple[bytes, str | None]:
    """The image's bytes and, when it was uploaded earlier, its id."""
    if source.file is not None and source.image_id:
        raise InvalidParameter("give either file or image_id, not both", field="image_id")
    if source.file is not None:
        return await source.file.read(), None
    if source.image_id:
        _, data = await service.load(source.image_id)
        return data, source.image_id
    raise InvalidParameter("an image is required: send file or image_id", field="file")


M = TypeVar("M", bound=BaseModel)


def build(model: type[M], **params: Any) -> M:
    """Form fields as a step or parameter model; unset fields take the model's defaults and
    cross-field rules fail with a 422 naming the field."""
    return validated(model, {k: v for k, v in params.items() if v is not None})


def image_response(result: ProcessedImage) -> Response:
    return Response(
        content=result.data,
        media_type=result.media_type,
        headers={
            "X-Image-Width": str(result.width),
            "X-Image-Height": str(result.height),
            "X-Source-Format": result.source_format,
            "X-Processing-Ms": f"{result.elapsed_ms:.1f}",
            "Content-Disposition": f'inline; filename="result.{result.format}"',
        },
    )


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
    data, source_id = await read_input(source, service)
    return await run_spec(service, data, source_id, spec, store=output.store)


async def run_spec(
    service: ImageService, data: bytes, source_id: str | None, spec: PipelineSpec, *, store: bool
) -> Response:
    started = time.monotonic()
    result = await service.process(data, spec)
    if not store:
        return image_response(result)
    record = await service.store_result(result, spec, source_id)
    response = stored_response(StoredImage.of(record))
    response.headers["X-Processing-Ms"] = f"{(time.monotonic() - started) * 1000:.1f}"
    return response


# Route parameters every image endpoint shares.
Source = Annotated[ImageInput, Depends(image_input)]
Output = Annotated[OutputOptions, Depends(output_options)]
Images = Annotated[ImageService, Depends(images)]

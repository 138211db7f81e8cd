"""POST /api/v1/{resize,crop,filter,enhance,convert,process}: each single-op endpoint is a
pipeline of one step; /process takes a whole pipeline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from pipelines.errors import InvalidParameter
from pipelines.ops.convert import ConvertStep
from pipelines.ops.crop import CropStep
from pipelines.ops.enhance import EnhanceStep
from pipelines.ops.filters import FilterName, FilterStep
from pipelines.ops.gravity import Gravity
from pipelines.ops.resize import ResizeMode, ResizeStep
from pipelines.spec import PipelineSpec, validated
from serve_app.errors import UnsupportedMediaType
from serve_app.routes.common import (
    IMAGE_RESPONSES,
    ImageInput,
    Images,
    Output,
    Source,
    build,
    json_field,
    parse_json,
    read_form,
    resolve_input,
    run_spec,
    run_steps,
)
from serve_app.schemas import ProcessRequest

router = APIRouter(prefix="/api/v1", tags=["operations"])


@router.post("/resize", responses=IMAGE_RESPONSES, response_class=Response)
async def resize(
    source: Source,
    output: Output,
    service: Images,
    width: int | None = Form(None, ge=1, le=16384),
    height: int | None = Form(None, ge=1, le=16384),
    mode: ResizeMode = Form("fit", description="fit, exact or fill"),
    gravity: Gravity = Form("center", description="where fill crops: center or smart"),
    upscale: bool = Form(False, description="allow a result larger than the source"),
) -> Response:
    """Resize: `fit` keeps the aspect ratio inside width x height (one may be omitted),
    `exact` stretches, `fill` covers the box and crops at `gravity`."""
    step = build(
        ResizeStep, width=width, height=height, mode=mode, gravity=gravity, upscale=upscale
    )
    return await run_steps(service, source, [step], output)


@router.post("/crop", responses=IMAGE_RESPONSES, response_class=Response)
async def crop(
    source: Source,
    output: Output,
    service: Images,
    x: int = Form(0, ge=0),
    y: int = Form(0, ge=0),
    width: int | None = Form(None, ge=1),
    height: int | None = Form(None, ge=1),
    aspect: str | None = Form(None, description='aspect ratio such as "16:9"', max_length=32),
    gravity: Gravity = Form("center"),
) -> Response:
    """Crop a box (x, y, width, height), or the largest `aspect` window placed by `gravity`."""
    step = build(CropStep, x=x, y=y, width=width, height=height, aspect=aspect, gravity=gravity)
    return await run_steps(service, source, [step], output)


@router.post("/filter", responses=IMAGE_RESPONSES, response_class=Response)
async def filter_(
    source: Source,
    output: Output,
    service: Images,
    name: FilterName = Form(
        ..., description="blur, sharpen, edge, gaussian, median, emboss, contour"
    ),
    radius: float | None = Form(None, gt=0, le=100, description="blur and gaussian"),
    size: int | None = Form(None, ge=3, le=15, description="median window, odd"),
) -> Response:
    step = build(FilterStep, name=name, radius=radius, size=size)
    return await run_steps(service, source, [step], output)


@router.post("/enhance", responses=IMAGE_RESPONSES, response_class=Response)
async def enhance(
    source: Source,
    output: Output,
    service: Images,
    brightness: float = Form(1.0, ge=0, le=10),
    contrast: float = Form(1.0, ge=0, le=10),
    saturation: float = Form(1.0, ge=0, le=10),
    sharpness: float = Form(1.0, ge=0, le=10),
) -> Response:
    """Factors: 1.0 leaves a property unchanged, 0 removes it, 2.0 doubles it."""
    step = build(
        EnhanceStep,
        brightness=brightness,
        contrast=contrast,
        saturation=saturation,
        sharpness=sharpness,
    )
    return await run_steps(service, source, [step], output)


@router.post("/convert", responses=IMAGE_RESPONSES, response_class=Response)
async def convert(source: Source, output: Output, service: Images) -> Response:
    """Re-encode as `format` (required here) with `quality`; EXIF orientation is applied."""
    if output.format is None:
        raise InvalidParameter("format is required", field="format")
    step = build(ConvertStep, format=output.format, quality=output.quality)
    return await run_steps(service, source, [step], output)


_PROCESS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ProcessRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "image_id": {"type": "string"},
                        "pipeline": {
                            "type": "string",
                            "description": "the pipeline as JSON: "
                            '{"steps": [...], "format", "quality"}',
                        },
                        "store": {"type": "boolean", "default": False},
                    },
                    "required": ["pipeline"],
                }
            },
        },
    }
}


@router.post(
    "/process", responses=IMAGE_RESPONSES, response_class=Response, openapi_extra=_PROCESS_BODY
)
async def process(request: Request, service: Images) -> Response:
    """Run a whole pipeline on one image, decoding once and encoding once.

    JSON body: `{"image_id", "steps": [{"op": "resize", ...}, ...], "format", "quality", "store"}`.
    Multipart: `file` (or `image_id`), `pipeline` (that JSON without image_id), `store`.
    """
    content_type = request.headers.get("content-type", "")
    if_none_match = request.headers.get("if-none-match")
    if content_type.startswith("application/json"):
        req = validated(ProcessRequest, parse_json(await request.body(), "body"))
        spec = PipelineSpec.model_validate(req.model_dump(exclude={"image_id", "store"}))
        image = await service.stored(req.image_id)
        return await run_spec(service, image, spec, store=req.store, if_none_match=if_none_match)
    if not content_type.startswith("multipart/form-data"):
        raise UnsupportedMediaType("send application/json or multipart/form-data", field="body")
    form = await read_form(request)
    spec = await json_field(form, "pipeline", PipelineSpec)
    # The other fields as FastAPI would parse them for the single-op routes (store: a bool).
    fields = validated(ProcessForm, {k: form.get(k) for k in ("image_id", "store") if k in form})
    file = form.get("file")
    source = ImageInput(
        file=file if isinstance(file, UploadFile) else None, image_id=fields.image_id or None
    )
    image = await resolve_input(source, service)
    return await run_spec(service, image, spec, store=fields.store, if_none_match=if_none_match)


class ProcessForm(BaseModel):
    """/process's multipart fields besides the file and the pipeline."""

    image_id: str | None = Field(None, max_length=64)
    store: bool = False

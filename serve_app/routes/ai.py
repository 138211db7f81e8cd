"""POST /api/v1/detect-objects, /api/v1/ocr, /api/v1/detect-faces: JSON results, or with
annotate=true the image with the boxes and labels drawn."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from fastapi.responses import Response

from pipelines.detection import DetectParams
from pipelines.faces import FaceEngineName, FaceParams
from pipelines.ocr import OcrEngineName, OcrParams
from pipelines.results import Box, FacesResult, ObjectsResult, OcrResult
from serve_app import context
from serve_app.routes.common import (
    IMAGE_MEDIA_TYPES,
    Images,
    Output,
    OutputOptions,
    Source,
    build,
    image_response,
    read_input,
)
from serve_app.schemas import ERROR_RESPONSES
from serve_app.services.ai import AiService

router = APIRouter(prefix="/api/v1", tags=["image AI"])


async def _ai_service() -> AiService:
    return context.ai_service()  # async: no worker-thread hop per request


Ai = Annotated[AiService, Depends(_ai_service)]
Annotate = Annotated[bool, Form(description="answer with the image, boxes drawn")]


def _responses(model: type) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "model": model,
            "description": "JSON result, or the annotated image with annotate=true",
            "content": {
                m: {"schema": {"type": "string", "format": "binary"}} for m in IMAGE_MEDIA_TYPES
            },
        },
        **ERROR_RESPONSES,
    }


async def _drawn(
    ai: AiService, data: bytes, boxes: list[tuple[Box, str]], output: OutputOptions
) -> Response:
    return image_response(await ai.annotate(data, boxes, output.format, output.quality))


@router.post("/detect-objects", response_model=ObjectsResult, responses=_responses(ObjectsResult))
async def detect_objects(
    source: Source,
    output: Output,
    service: Images,
    ai: Ai,
    confidence: float = Form(0.25, ge=0, le=1),
    iou: float = Form(0.7, gt=0, le=1),
    classes: str | None = Form(None, description='labels or ids to keep: "person,car"'),
    max_detections: int = Form(300, ge=1, le=1000),
    image_size: int = Form(640, ge=32, le=2048, description="inference size, multiple of 32"),
    model_name: str | None = Form(
        None, alias="model", description="a MODELS_YOLO_REGISTRY name; default: the weights"
    ),
    annotate: Annotate = False,
) -> Any:
    """Objects (YOLO) with label, class id, confidence and box in upright image pixels."""
    params = build(
        DetectParams,
        model=model_name or None,
        confidence=confidence,
        iou=iou,
        classes=classes,
        max_detections=max_detections,
        image_size=image_size,
    )
    data, _ = await read_input(source, service)
    result = await ai.detect_objects(data, params)
    if annotate:
        boxes = [(d.box, f"{d.label} {d.confidence:.2f}") for d in result.detections]
        return await _drawn(ai, data, boxes, output)
    return result


@router.post("/ocr", response_model=OcrResult, responses=_responses(OcrResult))
async def ocr(
    source: Source,
    output: Output,
    service: Images,
    ai: Ai,
    engine: OcrEngineName | None = Form(None, description="tesseract or easyocr"),
    lang: str = Form("eng", description="eng (or en); tesseract also takes deu, fra, ..."),
    annotate: Annotate = False,
) -> Any:
    """Text: the full text in reading order, and each word or phrase with box and confidence."""
    params = build(OcrParams, engine=engine, lang=lang)
    data, _ = await read_input(source, service)
    result = await ai.read_text(data, params)
    if annotate:
        return await _drawn(ai, data, [(b.box, b.text) for b in result.blocks], output)
    return result


@router.post("/detect-faces", response_model=FacesResult, responses=_responses(FacesResult))
async def detect_faces(
    source: Source,
    output: Output,
    service: Images,
    ai: Ai,
    engine: FaceEngineName | None = Form(None, description="haar or mtcnn"),
    scale_factor: float = Form(1.1, gt=1.0, le=2.0, description="haar"),
    min_neighbors: int = Form(5, ge=0, le=50, description="haar"),
    min_size: int = Form(30, ge=4, le=4096),
    confidence: float = Form(0.9, ge=0, le=1, description="mtcnn"),
    annotate: Annotate = False,
) -> Any:
    """Faces with boxes (and confidence where the engine gives one)."""
    params = build(
        FaceParams,
        engine=engine,
        scale_factor=scale_factor,
        min_neighbors=min_neighbors,
        min_size=min_size,
        confidence=confidence,
    )
    data, _ = await read_input(source, service)
    result = await ai.detect_faces(data, params)
    if annotate:
        labels = [
            (f.box, "face" if f.confidence is None else f"face {f.confidence:.2f}")
            for f in result.faces
        ]
        return await _drawn(ai, data, labels, output)
    return result

"""Stored images: POST /api/v1/upload, GET /api/v1/images/{id}, and image-info
(GET by image_id, POST with a file)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Header, Path, Query, UploadFile
from fastapi.responses import JSONResponse, Response

from serve_app.routes.common import (
    ImageInput,
    etag_matches,
    image_input,
    images,
    read_input,
    stored_response,
)
from serve_app.schemas import ERROR_RESPONSES, ImageInfo, StoredImage
from serve_app.services.images import ImageService

router = APIRouter(prefix="/api/v1", tags=["images"])
Service = Annotated[ImageService, Depends(images)]
ImageId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.post("/upload", status_code=201, response_model=StoredImage, responses=ERROR_RESPONSES)
async def upload(service: Service, file: UploadFile = File(...)) -> JSONResponse:
    """Store an image (after a full decode under the limits) and return its id and facts."""
    record = await service.upload(await file.read())
    return stored_response(StoredImage.of(record))


@router.get("/images/{image_id}", responses={200: {"content": {"image/*": {}}}, **ERROR_RESPONSES})
async def download(
    image_id: ImageId,
    service: Service,
    if_none_match: str | None = Header(None),
) -> Response:
    """The stored bytes, with a strong ETag (the content's sha256)."""
    record = await service.record(image_id)
    etag = f'"{record.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=31536000, immutable"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)  # no blob read for a revalidation
    data = await service.blob(record)
    return Response(content=data, media_type=record.media_type, headers=headers)


@router.get("/images/{image_id}/meta", response_model=StoredImage, responses=ERROR_RESPONSES)
async def metadata(image_id: ImageId, service: Service) -> StoredImage:
    return StoredImage.of(await service.record(image_id))


@router.get("/image-info", response_model=ImageInfo, responses=ERROR_RESPONSES)
async def image_info_by_id(
    service: Service, image_id: str = Query(..., max_length=64)
) -> dict[str, Any]:
    """Format, size, EXIF summary and analysis (colours, tone, texture, composition)."""
    _, data = await service.load(image_id)
    return await service.info(data)


@router.post("/image-info", response_model=ImageInfo, responses=ERROR_RESPONSES)
async def image_info_of_file(
    service: Service, source: Annotated[ImageInput, Depends(image_input)]
) -> dict[str, Any]:
    data, _ = await read_input(source, service)
    return await service.info(data)

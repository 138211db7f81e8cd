"""AI steps through the service in this process (real FaceDetector, OcrReader and Preprocessor
classes behind in-process handles): /api/v1/process and GET URLs run redact,
draw_detections and the detection gravities with one model call per image, a redaction whose
detector is down is refused rather than answered unredacted, and a batch redacts too."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from deployments.face_detector import FaceDetector
from deployments.preprocessor import Preprocessor
from pipelines.faces import FaceParams, HaarEngine
from pipelines.limits import Limits
from pipelines.ocr import TesseractEngine
from pipelines.tasks import TaskPipeline
from serve_app.services.ai import AiService
from serve_app.services.focus import FocusFinder
from serve_app.services.image_work import RemoteImageWork
from serve_app.services.images import ImageService
from serve_app.services.task_runner import TaskWorker
from serve_app.settings import CacheSettings, TaskSettings
from serve_app.store.result_cache import ResultCache
from serve_app.store.task_store import TaskStore
from tests.conftest import ASTRONAUT_FACE, best_iou, decode, encode, photo, text_image
from tests.serve_app.conftest import Backend
from tests.serve_app.inprocess import InProcessHandle
from tests.serve_app.url_stack import url_stack

ASTRONAUT = encode(photo("astronaut"), "JPEG", quality=92)


def faces_in(data: bytes) -> list:
    pixels = np.asarray(decode(data).convert("RGB"))
    return HaarEngine().detect(pixels, FaceParams()).faces


async def test_process_redacts_and_aims_with_one_face_detection(tmp_path: Path) -> None:
    pipeline = {
        "steps": [
            {"op": "crop", "aspect": "1:2", "gravity": "faces"},
            {"op": "resize", "width": 200},
            {"op": "redact", "target": "faces", "style": "pixelate"},
            {"op": "draw_detections", "target": "faces"},
        ],
        "format": "png",
    }
    async with url_stack(tmp_path) as s:
        record = await s.images.upload(ASTRONAUT)
        answer = await s.http.post("/api/v1/process", json={"image_id": record.id, **pipeline})
        detections = s.faces.calls["detect"]
        plain = await s.http.post(
            "/api/v1/process",
            json={"image_id": record.id, "steps": pipeline["steps"][:2], "format": "png"},
        )
    assert answer.status_code == 200, answer.text
    assert detections == 1  # gravity, redact and draw share one detection
    assert decode(answer.content).size == (200, 400)
    assert faces_in(plain.content) and not faces_in(answer.content)


async def test_url_redacts_faces_and_text(tmp_path: Path) -> None:
    async with url_stack(tmp_path) as s:
        (s.sources / "astronaut.jpg").write_bytes(ASTRONAUT)
        (s.sources / "note.png").write_bytes(encode(text_image("Secret Launch Codes"), "PNG"))
        faces = await s.http.get("/unsafe/300x300/filters:redact(faces):format(png)/astronaut.jpg")
        plain = await s.http.get("/unsafe/300x300/filters:format(png)/astronaut.jpg")
        text = await s.http.get("/unsafe/filters:redact(text,pixelate)/note.png")
    assert faces.status_code == 200 and text.status_code == 200, (faces.text, text.text)
    assert faces.headers["cache-control"].startswith("public")
    # Where the detector found the face before (the 512 px source's face, at 300 px), it finds
    # none after; what else it may find at 300 px (a false hit on the suit) is not a face.
    face = tuple(c * 300 / 512 for c in ASTRONAUT_FACE)
    assert best_iou(face, [f.model_dump() for f in faces_in(plain.content)]) > 0.5
    assert best_iou(face, [f.model_dump() for f in faces_in(faces.content)]) < 0.1
    assert s.ocr.calls["read"] == 1
    read = TesseractEngine().read(np.asarray(decode(text.content).convert("RGB")))
    assert not {"secret", "launch", "codes"} & {b.text.lower() for b in read.blocks}


async def test_a_redaction_whose_detector_is_down_is_refused(tmp_path: Path) -> None:
    """YOLO is down in this stack: an objects gravity falls back to smart (not kept), but a
    redaction of objects answers 503, never the image with the people showing."""
    async with url_stack(tmp_path) as s:
        (s.sources / "a.jpg").write_bytes(ASTRONAUT)
        redact = await s.http.get("/unsafe/filters:redact(objects,person)/a.jpg")
        record = await s.images.upload(ASTRONAUT)
        posted = await s.http.post(
            "/api/v1/process",
            json={"image_id": record.id, "steps": [{"op": "redact", "target": "objects"}]},
        )
        gravity = await s.http.post(
            "/api/v1/process",
            json={
                "image_id": record.id,
                "steps": [{"op": "crop", "aspect": "1:2", "gravity": "objects:person"}],
            },
        )
    assert redact.status_code == 503 and redact.json()["error"]["code"] == "model_unavailable"
    assert posted.status_code == 503 and posted.json()["error"]["code"] == "model_unavailable"
    assert gravity.status_code == 200 and decode(gravity.content).size == (256, 512)


async def test_a_batch_redacts_each_image(backend: Backend) -> None:
    pre, faces = InProcessHandle(Preprocessor), InProcessHandle(FaceDetector)
    limits = Limits()
    images = ImageService(
        RemoteImageWork(pre, limits),  # type: ignore[arg-type]
        backend.db, backend.store, limits,
        ResultCache(backend.db, backend.store, CacheSettings()),
    )  # fmt: skip
    ai = AiService(pre, None, None, faces, limits)  # type: ignore[arg-type]
    images.prepare = FocusFinder(ai, limits)  # as build_services does
    worker = TaskWorker(images, ai, TaskStore(backend.db), TaskSettings())
    pipeline = TaskPipeline.model_validate(
        {
            "steps": [
                {"op": "resize", "width": 256},
                {"op": "redact", "target": "faces"},
                {"op": "detect_faces"},
                {"op": "convert", "format": "png"},
            ]
        }
    )
    sources = [(await images.upload(ASTRONAUT)).id for _ in range(2)]
    task, _ = worker.store.create(pipeline.model_dump_json(), sources, fingerprint="fp")
    assert await worker.start(task.id)
    while worker.active:
        await asyncio.gather(*worker.active.values(), return_exceptions=True)
    view = worker.store.view(task.id)
    assert view is not None and view.task.status == "succeeded", view.task.error
    for item in view.items:
        assert json.loads(item.results or "[]")[0]["faces"] == []  # none left to find
        assert item.result_image_id is not None
        _, data = await images.load(item.result_image_id)
        assert not faces_in(data)


def test_the_yolo_registry_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from serve_app.settings import ModelSettings

    monkeypatch.setenv("MODELS_YOLO_REGISTRY", '{"person": "pkg:fall_detection/models/best.pt"}')
    assert ModelSettings().yolo_registry == {"person": "pkg:fall_detection/models/best.pt"}
    monkeypatch.setenv("MODELS_YOLO_REGISTRY", '{"../x": "a.pt"}')
    with pytest.raises(ValidationError):
        ModelSettings()


def test_steps_name_their_model() -> None:
    from pipelines.errors import InvalidParameter
    from pipelines.spec import parse_pipeline
    from pipelines.thumbor_url import translate

    spec = parse_pipeline(
        {"steps": [{"op": "redact", "target": "objects", "model": "person", "classes": ["Fall"]}]}
    )
    assert spec.findings() == {"objects:person": True}
    assert translate("/unsafe/filters:redact(objects,model=person)/a.jpg").spec.findings() == {
        "objects:person": True
    }
    for bad in ({"target": "faces", "model": "person"}, {"target": "objects", "model": "../x.pt"}):
        with pytest.raises(InvalidParameter):
            parse_pipeline({"steps": [{"op": "redact", **bad}]})


async def test_meta_lists_only_what_is_aimed_at(tmp_path: Path) -> None:
    """A redaction's faces are found for meta/ too (the steps run), but only smart's are
    focal points."""
    async with url_stack(tmp_path) as s:
        (s.sources / "a.jpg").write_bytes(ASTRONAUT)
        redact = await s.http.get("/unsafe/meta/100x100/filters:redact(faces)/a.jpg")
        smart = await s.http.get("/unsafe/meta/100x100/smart/filters:redact(faces)/a.jpg")
    assert redact.status_code == 200 and smart.status_code == 200
    assert redact.json()["thumbor"]["focal_points"] == []
    (face,) = smart.json()["thumbor"]["focal_points"]
    assert face["label"] == "face" and face["aim"] is True

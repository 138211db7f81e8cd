"""Live limits everywhere (issue #15 item 8): one Limits object per replica, held by every part
that applies a limit, changed in place by `user_config: {limits: ...}`; and one block of
serve_config.yaml feeding every deployment that applies limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments.face_detector import FaceDetector
from deployments.ocr_reader import OcrReader
from deployments.preprocessor import Preprocessor
from deployments.yolo_detector import YoloDetector
from pipelines.cost import TooCostly
from pipelines.limits import Limits, apply_live
from pipelines.spec import PipelineSpec
from serve_app.ingress import Ingress
from serve_app.services.build import build_services, reconfigure_limits
from serve_app.services.image_work import InlineFirst
from serve_app.services.task_runner import TaskRunner
from serve_app.settings import Settings
from tests.conftest import encode, photo
from tests.serve_app.inprocess import InProcessHandle

ROOT = Path(__file__).resolve().parents[2]
JPEG = encode(photo("coffee"), "JPEG")  # 600x400
RESIZE = PipelineSpec.model_validate({"steps": [{"op": "resize", "width": 300}]})
MEDIAN = PipelineSpec.model_validate({"steps": [{"op": "filter", "name": "median", "size": 5}]})


def test_apply_live_changes_the_object_in_place_from_the_base() -> None:
    base = Limits()
    live = base.model_copy()
    held = live
    apply_live(live, base, {"max_work": 100, "max_pixels": 1000})
    assert held.max_work == 100 and held.max_pixels == 1000
    apply_live(live, base, {"max_work": 200})  # max_pixels was dropped: back to its setting
    assert (held.max_work, held.max_pixels) == (200, base.max_pixels)
    with pytest.raises(ValueError):
        apply_live(live, base, {"max_work": -1})
    assert held.max_work == 200  # a bad change changes nothing


async def test_one_reconfigure_reaches_the_inline_path_and_every_service(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    preprocessor = InProcessHandle(Preprocessor, limits=settings.limits.to_limits().model_dump())
    handle: Any = preprocessor
    images, ai = build_services(settings, handle, handle, handle, handle, inline=True)
    work = images.work
    assert isinstance(work, InlineFirst)
    # One object, held by all of them.
    assert images.limits is work.local.limits is work.remote.limits is ai.limits
    assert (await images.process(JPEG, RESIZE)).width == 300
    config = {"limits": {"max_work": 1.0}}
    reconfigure_limits(images, settings, config)
    preprocessor.target.reconfigure(config)  # the same block, as serve deploy sends it
    with pytest.raises(TooCostly):
        await images.process(JPEG, RESIZE)  # inline
    with pytest.raises(TooCostly):
        await images.process(JPEG, MEDIAN)  # in the Preprocessor
    assert preprocessor.calls["process"] == 0  # refused before the hop, by the same limit
    reconfigure_limits(images, settings, {})
    preprocessor.target.reconfigure({})
    assert (await images.process(JPEG, MEDIAN)).width == 600
    preprocessor.target.pool.close()


def test_the_model_deployments_apply_the_live_limits() -> None:
    faces = FaceDetector.func_or_class()
    try:
        faces.reconfigure({"limits": {"max_work": 1.0}})
        assert faces.limits.max_work == 1.0
        faces.reconfigure({"limits": {}})
        assert faces.limits.max_work == Limits().max_work
        with pytest.raises(ValueError):  # refused before anything changes
            faces.reconfigure({"limits": {"max_frames": 0}})
    finally:
        faces.pool.close()


def test_every_deployment_that_applies_limits_reads_the_one_block() -> None:
    """serve_config.yaml writes the limits once (a YAML anchor) and every deployment that
    applies limits refers to it, and has a reconfigure that applies it."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    deployments = {d["name"]: d for d in config["applications"][0]["deployments"]}
    applying = {
        "Ingress": Ingress,
        "Preprocessor": Preprocessor,
        "YoloDetector": YoloDetector,
        "OcrReader": OcrReader,
        "FaceDetector": FaceDetector,
        "TaskRunner": TaskRunner,
    }
    blocks = [deployments[name]["user_config"]["limits"] for name in applying]
    assert all(block is blocks[0] for block in blocks), "one anchored block, not copies"
    for name, deployment in applying.items():
        cls = getattr(deployment, "func_or_class", deployment)
        assert callable(getattr(cls, "reconfigure", None)), name


def test_the_ingress_body_limit_follows_the_live_upload_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails when the body limit is read once at import: a live `max_upload_bytes` then
    refuses in the pipeline what the body limit let through, or the other way round."""
    from serve_app import context
    from serve_app.ingress import MULTIPART_OVERHEAD, _upload_body_limit

    settings = Settings(data_dir=tmp_path)
    handle: Any = InProcessHandle(Preprocessor, limits=settings.limits.to_limits().model_dump())
    images, _ = build_services(settings, handle, handle, handle, handle, inline=True)
    monkeypatch.setattr(context, "_image_service", images)
    reconfigure_limits(images, settings, {"limits": {"max_upload_bytes": 5000}})
    assert _upload_body_limit() == 5000 + MULTIPART_OVERHEAD
    reconfigure_limits(images, settings, {})
    assert _upload_body_limit() == settings.limits.max_upload_bytes + MULTIPART_OVERHEAD
    handle.target.pool.close()

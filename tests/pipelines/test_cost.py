"""The cost model (issue #18): every request priced from its header before decoding, refused
over LIMITS_MAX_WORK with 422 too_costly naming the field, and models priced at the size they
run at."""

from __future__ import annotations

import time
from typing import Any

import pytest
from PIL import Image

from pipelines import decode as decode_mod
from pipelines.admission import check_task_cost, estimate_model
from pipelines.cost import SECONDS_PER_WORK_UNIT, TooCostly
from pipelines.detection import DetectParams
from pipelines.faces import FaceParams
from pipelines.limits import Limits
from pipelines.ocr import OcrParams
from pipelines.pipeline import check_cost, estimate, run_pipeline
from pipelines.spec import PipelineSpec
from pipelines.tasks import TaskPipeline
from tests.conftest import encode, photo


def spec(*steps: dict[str, Any], **output: Any) -> PipelineSpec:
    return PipelineSpec.model_validate({"steps": list(steps), **output})


MEDIAN_15 = spec({"op": "filter", "name": "median", "size": 15})


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    """A 6000x4500 JPEG (27 MP, the photo of issue #18)."""
    return encode(photo("coffee").resize((6000, 4500)), "JPEG", quality=85)


def test_median_15_on_27_mp_is_refused_before_decoding(
    big_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded a request that is too costly")

    monkeypatch.setattr("pipelines.pipeline.decode", no_decoding)
    started = time.monotonic()
    with pytest.raises(TooCostly) as refused:
        run_pipeline(big_jpeg, MEDIAN_15, Limits())
    assert time.monotonic() - started < 1.0
    error = refused.value
    assert (error.status, error.code, error.field) == (422, "too_costly", "size")
    assert "LIMITS_MAX_WORK" in error.message and "5,000" in error.message  # the limit
    total = estimate(MEDIAN_15, 6000, 4500, "JPEG").total
    assert f"{total:,.0f}" in error.message  # the estimate


def test_a_smaller_kernel_or_image_is_admitted() -> None:
    limits = Limits()
    assert check_cost(spec({"op": "filter", "name": "median", "size": 3}), 1500, 1125, limits)
    assert check_cost(MEDIAN_15, 640, 480, limits)


def test_the_field_at_fault_is_the_costliest_part() -> None:
    limits = Limits(max_work=50)
    cases = [
        (spec({"op": "filter", "name": "gaussian", "radius": 5}), "radius"),
        (spec({"op": "enhance", "sharpness": 2.0, "brightness": 1.1}), "sharpness"),
        (spec({"op": "resize", "width": 9000, "upscale": True}), "width"),
        (spec(format="png"), "format"),
    ]
    for request, field in cases:
        with pytest.raises(TooCostly) as refused:
            check_cost(request, 3000, 2000, limits, source_format="JPEG")
        assert refused.value.field == field, request


def test_shrink_on_load_makes_a_thumbnail_of_27_mp_cheap() -> None:
    thumbnail = estimate(spec({"op": "resize", "width": 300}), 6000, 4500, "JPEG")
    full = estimate(spec(), 6000, 4500, "JPEG")
    assert thumbnail.total < full.total / 2
    assert (thumbnail.width, thumbnail.height) == (300, 225)
    assert dict(thumbnail.by_operation()).keys() == {"decode", "resize", "encode"}


def test_an_unknown_source_is_priced_as_the_dearest_decoder() -> None:
    unknown = estimate(spec(), 2000, 2000, None)
    for fmt in ("JPEG", "PNG", "WEBP", "BMP"):
        assert unknown.total >= estimate(spec(), 2000, 2000, fmt).total


def test_a_pipeline_just_under_the_limit_finishes_inside_its_deadline_on_one_core() -> None:
    """The calibration's promise, on a small scale: work priced just under a limit takes
    less CPU than the deadline that limit is set against (SECONDS_PER_WORK_UNIT with room)."""
    limits = Limits(max_work=400, pipeline_timeout_s=400 * SECONDS_PER_WORK_UNIT * 1.5)
    request = spec({"op": "filter", "name": "median", "size": 9}, format="png")
    per_mp = estimate(request, 1000, 750, "JPEG").total / 0.75
    side = int((0.95 * limits.max_work / per_mp * 1e6 * 4 / 3) ** 0.5)
    data = encode(photo("coffee").resize((side, side * 3 // 4)), "JPEG")
    assert check_cost(request, side, side * 3 // 4, limits, source_format="JPEG")
    cpu = time.thread_time()
    # Wall time is the machine's (other work shares it); the promise is about one core's CPU.
    run_pipeline(data, request, limits, deadline=time.monotonic() + 600)
    assert time.thread_time() - cpu < limits.pipeline_timeout_s


def test_models_cost_about_the_same_on_27_mp_as_on_2_mp() -> None:
    for params in (FaceParams(), FaceParams(engine="mtcnn"), DetectParams(), OcrParams()):
        big = estimate_model(params, 6000, 4500, "JPEG").total
        small = estimate_model(params, 1600, 1200, "JPEG").total
        assert big < small * 2, (params, big, small)


def test_a_face_min_size_below_the_window_is_the_field_at_fault() -> None:
    with pytest.raises(TooCostly) as refused:
        from pipelines.admission import check_model_cost

        check_model_cost(FaceParams(engine="mtcnn", min_size=4), 1200, 900, Limits(max_work=500))
    assert refused.value.field == "min_size"


def test_a_batch_is_priced_through_every_stage_and_ai_step() -> None:
    pipeline = TaskPipeline.model_validate(
        {
            "steps": [
                {"op": "resize", "width": 2000},
                {"op": "detect_faces"},
                {"op": "filter", "name": "median", "size": 15},
                {"op": "ocr"},
            ]
        }
    )
    with pytest.raises(TooCostly) as refused:
        check_task_cost(pipeline, 6000, 4500, Limits(), "JPEG")
    assert refused.value.field == "size"
    cheap = TaskPipeline.model_validate({"steps": [{"op": "resize", "width": 300}, {"op": "ocr"}]})
    priced = check_task_cost(cheap, 6000, 4500, Limits(), "JPEG")
    assert {part.what for part in priced.parts} >= {"resize", "ocr", "decode", "encode"}


def test_the_decode_price_follows_pillows_draft_scale() -> None:
    img = Image.new("RGB", (4000, 3000))
    data = encode(img, "JPEG")
    header = decode_mod.read_header(data, Limits())
    hinted = header.shrunk(lambda w, h: (500, 375))
    decoded = decode_mod.decode(header, shrink_to=lambda w, h: (500, 375))
    assert hinted == decoded.image.size == (500, 375)

"""spec: PipelineSpec validation, output() precedence, parse_pipeline's 422s, canonical JSON."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipelines.errors import InvalidParameter
from pipelines.ops.convert import ConvertStep
from pipelines.ops.enhance import EnhanceStep
from pipelines.ops.filters import FilterStep
from pipelines.ops.resize import ResizeStep
from pipelines.spec import MAX_STEPS, PipelineSpec, parse_pipeline


def test_steps_are_parsed_into_their_models() -> None:
    spec = parse_pipeline(
        {
            "steps": [
                {"op": "resize", "width": 100},
                {"op": "crop", "aspect": "1:1"},
                {"op": "filter", "name": "blur"},
                {"op": "enhance", "contrast": 1.2},
                {"op": "convert", "format": "webp"},
            ]
        }
    )
    assert [type(s).__name__ for s in spec.steps] == [
        "ResizeStep",
        "CropStep",
        "FilterStep",
        "EnhanceStep",
        "ConvertStep",
    ]


def test_a_spec_object_passes_through() -> None:
    spec = PipelineSpec(steps=[ResizeStep(width=10)])
    assert parse_pipeline(spec) is spec


# --- output() ----------------------------------------------------------------------------


def test_top_level_format_wins_over_convert_step() -> None:
    spec = PipelineSpec(format="png", steps=[ConvertStep(format="webp", quality=40)])
    assert spec.output("JPEG") == ("png", 40)


def test_top_level_quality_wins_over_convert_step() -> None:
    spec = PipelineSpec(quality=90, steps=[ConvertStep(format="webp", quality=40)])
    assert spec.output("JPEG") == ("webp", 90)


def test_convert_step_wins_over_source_default() -> None:
    spec = PipelineSpec(steps=[ResizeStep(width=10), ConvertStep(format="webp", quality=70)])
    assert spec.output("JPEG") == ("webp", 70)


def test_last_convert_step_wins() -> None:
    spec = PipelineSpec(
        steps=[ConvertStep(format="webp"), ResizeStep(width=10), ConvertStep(format="bmp")]
    )
    assert spec.output("PNG") == ("bmp", None)


@pytest.mark.parametrize(
    ("source", "fmt"),
    [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"), ("TIFF", "tiff"), ("PCX", "png")],
)
def test_source_format_is_the_default(source: str, fmt: str) -> None:
    assert PipelineSpec().output(source) == (fmt, None)


# --- validation --------------------------------------------------------------------------


def test_max_steps_is_allowed() -> None:
    spec = parse_pipeline({"steps": [{"op": "filter", "name": "blur"}] * MAX_STEPS})
    assert len(spec.steps) == MAX_STEPS


def test_more_than_max_steps_is_invalid() -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_pipeline({"steps": [{"op": "filter", "name": "blur"}] * (MAX_STEPS + 1)})
    assert err.value.status == 422
    assert err.value.field == "steps"


@pytest.mark.parametrize("step", [{"op": "swirl", "angle": 90}, {"width": 10}, "resize"])
def test_unknown_or_missing_op_is_invalid(step: object) -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_pipeline({"steps": [step]})
    assert err.value.status == 422
    assert err.value.field == "steps"
    assert err.value.code == "invalid_parameter"


def test_unknown_top_level_key_is_rejected() -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_pipeline({"steps": [], "colour": "red"})
    assert err.value.field == "colour"


def test_unknown_step_key_is_rejected() -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_pipeline({"steps": [{"op": "enhance", "brightness": 1.1, "gamma": 2}]})
    assert err.value.field == "gamma"


@pytest.mark.parametrize(("quality", "ok"), [(0, False), (1, True), (100, True), (101, False)])
def test_quality_range(quality: int, ok: bool) -> None:
    if ok:
        assert parse_pipeline({"quality": quality}).quality == quality
    else:
        with pytest.raises(InvalidParameter) as err:
            parse_pipeline({"quality": quality})
        assert err.value.field == "quality"


def test_error_message_says_where() -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_pipeline({"steps": [{"op": "resize", "width": 100}, {"op": "resize", "width": 0}]})
    assert err.value.message.startswith("steps.1.resize.width:")
    assert err.value.to_dict()["field"] == "width"


def test_model_level_errors_are_pydantic_errors() -> None:
    with pytest.raises(ValidationError):
        PipelineSpec(steps=[{"op": "nope"}])  # type: ignore[list-item]


# --- canonical JSON ----------------------------------------------------------------------


def test_canonical_json_is_stable_for_equal_specs() -> None:
    """Defaults, aliases and key order do not change the cache key."""
    a = parse_pipeline(
        {
            "steps": [
                {"op": "resize", "width": 300},
                {"op": "filter", "name": "median", "size": 3},
                {"op": "convert", "format": "JPG"},
            ]
        }
    )
    b = PipelineSpec(
        steps=[
            ResizeStep(height=None, width=300, mode="fit", gravity="center", upscale=False),
            FilterStep(size=3, name="median"),
            ConvertStep(format="jpeg"),
        ]
    )
    assert a == b
    assert a.canonical_json() == b.canonical_json()
    assert a.canonical_json() == a.model_copy(deep=True).canonical_json()


def test_canonical_json_differs_for_different_specs() -> None:
    a = PipelineSpec(steps=[EnhanceStep(brightness=1.1)])
    b = PipelineSpec(steps=[EnhanceStep(brightness=1.2)])
    c = PipelineSpec(steps=[EnhanceStep(brightness=1.1)], format="png")
    assert len({a.canonical_json(), b.canonical_json(), c.canonical_json()}) == 3


def test_canonical_json_round_trips() -> None:
    spec = PipelineSpec(steps=[ResizeStep(width=10), ConvertStep(format="tif")], quality=50)
    again = PipelineSpec.model_validate_json(spec.canonical_json())
    assert again == spec
    assert again.canonical_json() == spec.canonical_json()

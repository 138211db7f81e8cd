"""The URL grammar: libthumbor's URLs parse as thumbor reads them, translate to the steps
thumbor would take, and compose back; url_for writes the URL of a pipeline."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libthumbor import CryptoURL

from pipelines.spec import PipelineSpec, parse_pipeline
from pipelines.thumbor_url import (
    Filter,
    MalformedUrl,
    NoUrlForm,
    ThumborUrl,
    compose,
    parse,
    split_filters,
    translate,
    url_for,
)

crypto = CryptoURL(key="k")


def steps_of(path: str) -> list[dict[str, object]]:
    return [{"op": s.op, **s.model_dump(exclude_defaults=True)} for s in translate(path).spec.steps]


def test_libthumbor_options_parse() -> None:
    path = crypto.generate(
        image_url="a/b.jpg",
        width=300,
        height=200,
        fit_in=True,
        flip=True,
        halign="left",
        valign="bottom",
        smart=True,
        crop=((10, 20), (110, 220)),
        trim=("bottom-right", 15),
        meta=True,
        filters=["quality(70)", "watermark(wm.png,-10,center,20,none,30)"],
    )
    url = parse(path)
    assert url.signature is not None and len(url.signature) == 28
    assert (url.width, url.height, url.flip_horizontal, url.fit) == (300, 200, True, "fit-in")
    assert (url.halign, url.valign, url.smart, url.meta) == ("left", "bottom", True, True)
    assert url.crop == (10, 20, 110, 220) and url.trim == ("bottom-right", 15)
    assert url.filters == (
        Filter("quality", ("70",)),
        Filter("watermark", ("wm.png", "-10", "center", "20", "none", "30")),
    )
    assert url.image == "a/b.jpg" and url.signed == path.split("/", 2)[2]


def test_translation_is_in_thumbors_order() -> None:
    path = "unsafe/trim/10x10:200x200/fit-in/-100x0/filters:grayscale():rotate(90)/x.jpg"
    assert [s["op"] for s in steps_of(path)] == [
        "crop",
        "trim",
        "thumbnail",
        "flip",
        "grayscale",
        "rotate",
    ]


@pytest.mark.parametrize(
    ("path", "thumbnail"),
    [
        ("unsafe/300x200/i", {"width": 300, "height": 200}),
        ("unsafe/300x0/i", {"width": 300}),
        ("unsafe/x200/i", {"height": 200}),
        ("unsafe/origx100/i", {"width": "orig", "height": 100}),
        (
            "unsafe/adaptive-fit-in/30x20/i",
            {"width": 30, "height": 20, "mode": "fit_in", "adaptive": True},
        ),
        ("unsafe/full-fit-in/30x20/i", {"width": 30, "height": 20, "mode": "full_fit_in"}),
        ("unsafe/30x20/filters:stretch()/i", {"width": 30, "height": 20, "mode": "stretch"}),
        (
            "unsafe/30x20/filters:upscale():no_upscale()/i",
            {"width": 30, "height": 20, "upscale": False},
        ),
        (
            "unsafe/fit-in/30x20/filters:upscale()/i",
            {"width": 30, "height": 20, "mode": "fit_in", "upscale": True},
        ),
        (
            "unsafe/30x20/right/top/smart/i",
            {"width": 30, "height": 20, "halign": "right", "valign": "top", "smart": True},
        ),
    ],
)
def test_geometry(path: str, thumbnail: dict[str, object]) -> None:
    (step,) = steps_of(path)
    assert step == {"op": "thumbnail", **thumbnail}


def test_encoded_and_double_encoded_source_urls() -> None:
    assert (
        parse("unsafe/10x10/http%3A%2F%2Fx.test%2Fa.jpg%3Fv%3D1").image == "http://x.test/a.jpg?v=1"
    )
    assert parse("unsafe/10x10/http%253A%252F%252Fx.test%252Fa.jpg").image == "http://x.test/a.jpg"
    assert parse("unsafe/10x10/http://x.test/a.jpg").image == "http://x.test/a.jpg"


def test_smart_asks_for_detection_and_focal_gives_regions() -> None:
    plan = translate("unsafe/100x100/smart/filters:focal(10x20:30x40)/i")
    assert plan.spec.detect == ["faces", "objects"]
    (region,) = plan.spec.regions
    assert (region.x1, region.y1, region.x2, region.y2, region.label) == (10, 20, 30, 40, "focal")


def test_filters_split_with_quotes_and_parentheses() -> None:
    assert split_filters("watermark('a,b.png',1,2,3):quality(5)") == (
        Filter("watermark", ("'a,b.png'", "1", "2", "3")),
        Filter("quality", ("5",)),
    )
    with pytest.raises(MalformedUrl):
        split_filters("quality(5")


@pytest.mark.parametrize(
    "path",
    [
        "unsafe",
        "unsafe/",
        "/",
        "unsafe/99999x1/i",
        "unsafe/10x10/filters:blur(0)/i",
        "unsafe/10x10/filters:round_corner(a,1,2,3)/i",
        "unsafe/trim:999/i",
        "unsafe/10x10/filters:focal(1x1:0x0)/i",
        "unsafe/" + "9" * 20 + "x1:1x1/i",
        "unsafe/10x10/filters:quality(5):" + "grayscale():" * 30 + "x()/i",
    ],
)
def test_malformed(path: str) -> None:
    with pytest.raises(MalformedUrl) as refused:
        translate(path)
    assert refused.value.status == 400


def test_plan_carries_max_age_and_whether_a_format_was_named() -> None:
    plan = translate("unsafe/10x10/filters:max_age(60):format(webp)/i")
    assert (plan.max_age, plan.format_given, plan.spec.format) == (60, True, "webp")
    assert not translate("unsafe/10x10/i").format_given


_urls = st.builds(
    ThumborUrl,
    image=st.sampled_from(["a.jpg", "dir/b c.png", "http://x.test/a.jpg?v=1", "0" * 32]),
    meta=st.booleans(),
    trim=st.one_of(
        st.none(), st.tuples(st.sampled_from(["top-left", "bottom-right"]), st.integers(0, 442))
    ),
    crop=st.one_of(st.none(), st.tuples(*[st.integers(0, 5000)] * 4)),
    fit=st.sampled_from([None, "fit-in", "adaptive-fit-in", "full-fit-in", "adaptive-full-fit-in"]),
    width=st.one_of(st.none(), st.integers(1, 4000), st.just("orig")),
    height=st.one_of(st.none(), st.integers(1, 4000), st.just("orig")),
    flip_horizontal=st.booleans(),
    flip_vertical=st.booleans(),
    halign=st.sampled_from(["left", "center", "right"]),
    valign=st.sampled_from(["top", "middle", "bottom"]),
    smart=st.booleans(),
    filters=st.lists(
        st.sampled_from(
            [
                Filter("quality", ("50",)),
                Filter("grayscale"),
                Filter("rotate", ("90",)),
                Filter("fill", ("red", "true")),
                Filter("blur", ("3", "1.5")),
            ]
        ),
        max_size=3,
    ).map(tuple),
)


@settings(derandomize=True, database=None, deadline=None)
@given(_urls)
def test_compose_then_parse_is_the_same_url(url: ThumborUrl) -> None:
    again = parse("unsafe/" + compose(url))
    assert again == ThumborUrl(**{**url.__dict__, "signed": again.signed})


@pytest.mark.parametrize(
    "pipeline",
    [
        {"steps": [{"op": "thumbnail", "width": 300, "height": 200, "mode": "fit_in"}]},
        {
            "steps": [
                {"op": "crop", "x": 5, "y": 6, "width": 70, "height": 80, "outside": "ignore"},
                {"op": "trim", "tolerance": 3},
                {"op": "thumbnail", "width": 30, "smart": True, "halign": "left"},
                {"op": "flip", "vertical": True},
                {"op": "unsharp", "amount": 1.5, "radius": 2, "luminance_only": True},
                {"op": "brightness", "amount": -20},
                {"op": "rgb", "red": 3},
                {"op": "fill", "color": "red", "fill_transparent": True},
                {"op": "round_corner", "radius": 5, "radius_y": 9, "color": "#102030"},
                {
                    "op": "watermark",
                    "image": "wm.png",
                    "x": "-0",
                    "y": "10p",
                    "alpha": 20,
                    "w_ratio": 30,
                },
                {"op": "scale", "factor": 0.5},
                {"op": "max_bytes", "bytes": 9000},
                {"op": "filter", "name": "gaussian", "radius": 2.5},
            ],
            "format": "webp",
            "quality": 70,
        },
    ],
)
def test_url_for_then_translate_is_the_same_pipeline(pipeline: dict[str, object]) -> None:
    spec = parse_pipeline({**pipeline, "frames": "all"})
    path = url_for(spec, "photos/a.jpg")
    back = translate("unsafe/" + path).spec
    if any(getattr(s, "smart", False) for s in spec.steps):
        back = back.model_copy(update={"detect": []})
    assert back.model_dump() == spec.model_dump()


def test_url_for_resize_maps_to_the_nearest_thumbor_form() -> None:
    fit = PipelineSpec.model_validate({"steps": [{"op": "resize", "width": 300, "height": 300}]})
    assert url_for(fit, "a.jpg") == "fit-in/300x300/filters:cover()/a.jpg"
    fill = PipelineSpec.model_validate(
        {
            "steps": [
                {"op": "resize", "width": 30, "height": 20, "mode": "fill", "gravity": "smart"}
            ],
            "frames": "all",
        }
    )
    assert url_for(fill, "a.jpg") == "30x20/smart/filters:no_upscale()/a.jpg"


@pytest.mark.parametrize(
    "steps",
    [
        [{"op": "enhance", "brightness": 1.2}],
        [{"op": "crop", "aspect": "16:9"}],
        [{"op": "filter", "name": "median"}],
        [{"op": "grayscale"}, {"op": "thumbnail", "width": 9}],
    ],
)
def test_url_for_refuses_what_the_grammar_cannot_say(steps: list[dict[str, object]]) -> None:
    with pytest.raises(NoUrlForm) as refused:
        url_for(parse_pipeline({"steps": steps}), "a.jpg")
    assert refused.value.status == 422

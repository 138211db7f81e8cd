"""redact, draw_detections and the detection gravities on real photos, with the engines in this
process: the detections go in as the service hands them over (regions of a kind, in source
pixels), and a detector looks at the result again."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.faces import FaceParams, HaarEngine
from pipelines.limits import Limits
from pipelines.ocr import TesseractEngine
from pipelines.ops.detections import RedactStep, padded
from pipelines.pipeline import estimate, run_pipeline
from pipelines.regions import Region
from pipelines.results import Box
from pipelines.spec import PipelineSpec
from pipelines.thumbor_url import translate
from tests.conftest import decode, encode, photo, text_image, ultralytics_asset

LIMITS = Limits()
haar = HaarEngine()


def faces_in(img: Image.Image) -> list[Box]:
    return [f.box for f in haar.detect(np.asarray(img.convert("RGB")), FaceParams()).faces]


def as_regions(boxes: list[Box], kind: str, label: str = "face") -> list[Region]:
    return [
        Region(x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2, label=label, kind=kind, aim=False) for b in boxes
    ]


def group_photo() -> Image.Image:
    """zidane.jpg's two players (faces near x 830-1070 of the photo) on the right of a wide,
    plain 2400x720 frame: a centred 1:1 or 16:9 crop misses both faces."""
    canvas = Image.new("RGB", (2400, 720), (128, 128, 128))
    canvas.paste(ultralytics_asset("zidane.jpg").crop((300, 0, 1280, 720)), (1420, 0))
    return canvas


def run(data: bytes, steps: list[dict], regions: list[Region], fmt: str = "png") -> Image.Image:
    spec = PipelineSpec.model_validate({"steps": steps, "format": fmt})
    spec = spec.model_copy(update={"regions": regions})
    return decode(run_pipeline(data, spec, LIMITS).data)


def inside(box: Box, window: tuple[float, float, float, float]) -> bool:
    left, top, right, bottom = window
    return box.x1 >= left - 1 and box.y1 >= top - 1 and box.x2 <= right + 1 and box.y2 <= bottom + 1


@pytest.mark.parametrize("style", ["blur", "pixelate", "fill"])
def test_redacted_faces_are_gone_and_nothing_else_changed(style: str) -> None:
    source = photo("astronaut")
    data = encode(source, "PNG")
    before = faces_in(source)
    assert before, "the astronaut's face is found before"
    out = run(
        data, [{"op": "redact", "target": "faces", "style": style}], as_regions(before, "faces")
    )
    after = faces_in(out)
    assert not any(a.iou(b) > 0.1 for a in after for b in before), (style, after)
    mask = np.ones((source.height, source.width), dtype=bool)
    for r in as_regions(before, "faces"):
        x1, y1, x2, y2 = padded(r, 0.1, source.size)
        mask[y1:y2, x1:x2] = False
    same = np.asarray(out.convert("RGB"))[mask] == np.asarray(source)[mask]
    assert same.all()
    assert not (np.asarray(out.convert("RGB"))[~mask] == np.asarray(source)[~mask]).all()


def test_boxes_follow_a_resize_and_a_crop_before_the_redaction() -> None:
    """Regions come in source pixels; after a crop and a fit to 256 px the faces are hidden
    where their pixels now are, and the rest equals the same pipeline without redact."""
    source = group_photo()
    data = encode(source, "PNG")
    regions = as_regions(faces_in(source), "faces")
    assert len(regions) >= 2
    geometry = [
        {"op": "crop", "x": 1200, "y": 0, "width": 1200, "height": 720},
        {"op": "resize", "width": 600},
    ]
    plain = run(data, geometry, regions)
    hidden = run(data, [*geometry, {"op": "redact", "target": "faces", "style": "fill"}], regions)
    assert faces_in(plain) and not faces_in(hidden)
    differs = np.any(np.asarray(plain) != np.asarray(hidden), axis=2)
    ys, xs = np.nonzero(differs)
    # Every changed pixel lies in a face box moved by the crop (-1200) and the fit (x0.5).
    for x, y in zip(xs, ys, strict=True):
        assert any(
            (r.x1 - 1200) * 0.5 - 30 <= x <= (r.x2 - 1200) * 0.5 + 30
            and r.y1 * 0.5 - 30 <= y <= r.y2 * 0.5 + 30
            for r in regions
        )


def test_redact_takes_only_its_kind_and_classes() -> None:
    source = photo("coffee")
    data = encode(source, "PNG")
    cup = Region(x1=100, y1=50, x2=300, y2=250, label="cup", kind="objects", aim=False)
    person = Region(x1=350, y1=100, x2=500, y2=300, label="person", kind="objects", aim=False)
    face = Region(x1=10, y1=10, x2=60, y2=60, label="face", kind="faces", aim=False)
    step = {"op": "redact", "target": "objects", "classes": ["person"], "style": "fill"}
    out = np.asarray(run(data, [step], [cup, person, face]))
    src = np.asarray(source)
    assert (out[150:250, 400:450] == 0).all()  # the person
    assert (out[60:240, 110:290] == src[60:240, 110:290]).all()  # the cup: another class
    assert (out[15:55, 15:55] == src[15:55, 15:55]).all()  # a face: another detection


def test_without_detections_redact_changes_nothing() -> None:
    data = encode(photo("coffee"), "PNG")
    out = run(data, [{"op": "redact", "target": "faces"}], [])
    assert (np.asarray(out) == np.asarray(photo("coffee"))).all()


@pytest.mark.parametrize("aspect", ["1:1", "16:9"])
def test_gravity_faces_keeps_every_face_in_the_crop(aspect: str) -> None:
    source = group_photo()
    data = encode(source, "PNG")
    found = faces_in(source)
    assert len(found) >= 2
    regions = as_regions(found, "faces")
    ratio = {"1:1": 1.0, "16:9": 16 / 9}[aspect]
    width = round(720 * ratio)

    def window(gravity: str) -> tuple[float, float, float, float]:
        out = np.asarray(run(data, [{"op": "crop", "aspect": aspect, "gravity": gravity}], regions))
        assert out.shape[:2] == (720, width)
        # Where the crop was cut: the window of the source whose pixels it shows.
        src = np.asarray(source)
        for left in range(0, 2400 - width + 1):
            if (src[:, left : left + 4] == out[:, :4]).all() and (
                src[:, left + width - 1] == out[:, -1]
            ).all():
                return (left, 0, left + width, 720)
        raise AssertionError("window not found")

    assert all(inside(face, window("faces")) for face in found)
    assert not all(inside(face, window("center")) for face in found)  # a test that can fail


@pytest.mark.parametrize("size", [(300, 300), (320, 180)])
def test_fill_with_gravity_faces_shows_the_faces(size: tuple[int, int]) -> None:
    source = group_photo()
    data = encode(source, "PNG")
    regions = as_regions(faces_in(source), "faces")
    step = {"op": "resize", "mode": "fill", "width": size[0], "height": size[1]}
    aimed = run(data, [{**step, "gravity": "faces"}], regions)
    centred = run(data, [step], regions)
    assert aimed.size == size
    assert len(faces_in(aimed.resize((size[0] * 3, size[1] * 3)))) >= 1
    assert not faces_in(centred.resize((size[0] * 3, size[1] * 3)))


def test_gravity_without_detections_is_smart() -> None:
    data = encode(group_photo(), "PNG")
    smart = run(data, [{"op": "crop", "aspect": "1:1", "gravity": "smart"}], [])
    faces = run(data, [{"op": "crop", "aspect": "1:1", "gravity": "faces"}], [])
    assert (np.asarray(smart) == np.asarray(faces)).all()


def test_gravity_objects_takes_the_labels_asked_for_largest_first() -> None:
    data = encode(group_photo(), "PNG")
    small = Region(x1=0, y1=0, x2=100, y2=100, label="dog", kind="objects", aim=False)
    big = Region(x1=2000, y1=100, x2=2300, y2=600, label="person", kind="objects", aim=False)
    src = np.asarray(group_photo())

    def left_edge(gravity: str) -> int:
        out = np.asarray(
            run(data, [{"op": "crop", "aspect": "1:1", "gravity": gravity}], [small, big])
        )
        return next(x for x in range(0, 1681) if (src[:, x : x + 720] == out).all())

    assert left_edge("objects") == 1680  # the person: largest; the dog does not fit with it
    assert left_edge("objects:dog") == 0


def test_draw_detections_draws_around_the_boxes_only() -> None:
    source = photo("coffee")
    data = encode(source, "PNG")
    cup = Region(x1=100, y1=50, x2=300, y2=250, label="cup", kind="objects", aim=False)
    out = np.asarray(run(data, [{"op": "draw_detections", "target": "objects"}], [cup]))
    src = np.asarray(source)
    assert (out[300:, :] == src[300:, :]).all() and (out[:, 350:] == src[:, 350:]).all()
    assert not (out[50:60, 100:300] == src[50:60, 100:300]).all()


@pytest.mark.parametrize("style", ["blur", "pixelate"])
def test_redacted_text_reads_as_nothing(style: str) -> None:
    source = text_image("Secret Launch Codes 1234")
    ocr = TesseractEngine()
    read = ocr.read(np.asarray(source))
    words = [b.text for b in read.blocks]
    assert "Secret" in words and "1234" in words
    regions = [
        Region(
            x1=b.box.x1, y1=b.box.y1, x2=b.box.x2, y2=b.box.y2, label=b.text, kind="text", aim=False
        )
        for b in read.blocks
    ]
    out = run(encode(source, "PNG"), [{"op": "redact", "target": "text", "style": style}], regions)
    again = ocr.read(np.asarray(out.convert("RGB")))
    assert not {w.lower() for w in words} & {b.text.lower() for b in again.blocks}


def test_findings_and_their_cost() -> None:
    spec = PipelineSpec.model_validate(
        {
            "steps": [
                {"op": "resize", "mode": "fill", "width": 100, "height": 100, "gravity": "faces"},
                {"op": "redact", "target": "faces"},
                {"op": "draw_detections", "target": "text", "engine": "easyocr"},
            ]
        }
    )
    assert spec.findings() == {"faces": True, "text:easyocr": True}
    assert spec.needs_detection
    parts = {p.what: p.work for p in estimate(spec, 4000, 3000, "jpeg").parts}
    assert parts["redact"] > 0 and parts["draw_detections"] > 0
    assert RedactStep().cost(2000, 1000).work == pytest.approx(8.0)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"op": "redact", "target": "cars"}, "target"),
        ({"op": "redact", "target": "text", "engine": "mtcnn"}, "redact"),
        ({"op": "redact", "target": "faces", "classes": ["person"]}, "redact"),
        ({"op": "redact", "strength": 0}, "strength"),
        ({"op": "crop", "aspect": "1:1", "gravity": "objects:"}, "gravity"),
    ],
)
def test_bad_steps_are_refused_up_front(raw: dict, field: str) -> None:
    from pipelines.errors import InvalidParameter
    from pipelines.spec import parse_pipeline

    with pytest.raises(InvalidParameter) as refused:
        parse_pipeline({"steps": [raw]})
    assert refused.value.status == 422 and refused.value.field == field


def test_url_filters() -> None:
    steps = translate("/unsafe/300x200/filters:redact(faces):redact(objects,person)/a.jpg")
    assert steps.spec.findings() == {"faces": True, "objects": True}
    text = translate("/unsafe/filters:redact(text,pixelate):draw_detections(faces,mtcnn)/a.jpg")
    redact, draw = text.spec.steps
    assert (redact.op, redact.target, redact.style) == ("redact", "text", "pixelate")  # type: ignore[union-attr]
    assert (draw.op, draw.target, draw.engine) == ("draw_detections", "faces", "mtcnn")  # type: ignore[union-attr]

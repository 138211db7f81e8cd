"""A pipeline as a URL: the path (after the signature segment) that asks for the same steps,
where thumbor's grammar can say them (the Playground shows it)."""

from __future__ import annotations

import math
from dataclasses import replace

from pipelines.errors import ServiceError
from pipelines.ops.canvas import BackgroundStep, FillStep, RoundCornerStep, parse_colour
from pipelines.ops.color import (
    BrightnessStep,
    ContrastStep,
    EqualizeStep,
    GrayscaleStep,
    RgbStep,
    SaturationStep,
)
from pipelines.ops.convert import ConvertStep
from pipelines.ops.crop import CropStep
from pipelines.ops.detections import DrawDetectionsStep, RedactStep
from pipelines.ops.filters import FilterStep
from pipelines.ops.max_bytes import MaxBytesStep
from pipelines.ops.orientation import FlipStep, RotateStep
from pipelines.ops.resize import ResizeStep
from pipelines.ops.scale import ScaleStep
from pipelines.ops.thumbnail import ThumbnailStep
from pipelines.ops.trim import TrimStep
from pipelines.ops.unsharp import UnsharpStep
from pipelines.ops.watermark import WatermarkStep
from pipelines.spec import PipelineSpec, Step
from pipelines.thumbor_url.grammar import Filter, ThumborUrl, compose


class NoUrlForm(ServiceError):
    """A pipeline some step of which thumbor's grammar cannot say (an `enhance`, a crop by
    aspect, steps out of thumbor's order): 422 naming why."""

    status = 422
    code = "no_url_form"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _detection_filter(step: RedactStep | DrawDetectionsStep) -> Filter:
    if isinstance(step, RedactStep) and (step.strength, step.padding) != (50, 0.1):
        raise NoUrlForm("no URL filter says a redaction's strength or padding", field="steps")
    args = [step.target, *(step.classes or [])]
    if step.engine:
        args.append(step.engine)
    if step.model:
        args.append(f"model={step.model}")
    if isinstance(step, RedactStep) and step.style != "blur":
        args.append(step.style)
    return Filter(step.op, tuple(args))


def _filter_for(step: Step) -> list[Filter]:
    """The URL filters that say `step` (raises NoUrlForm when none does)."""
    if isinstance(step, FilterStep) and step.name == "gaussian":
        return [Filter("blur", (str(max(1, math.ceil(step.radius))), _number(step.radius)))]
    if isinstance(step, UnsharpStep):
        lum = "true" if step.luminance_only else "false"
        return [Filter("sharpen", (_number(step.amount), _number(step.radius), lum))]
    if isinstance(step, BrightnessStep):
        return [Filter("brightness", (str(step.amount),))]
    if isinstance(step, ContrastStep):
        return [Filter("contrast", (str(step.amount),))]
    if isinstance(step, SaturationStep):
        return [Filter("saturation", (_number(step.factor),))]
    if isinstance(step, RgbStep):
        return [Filter("rgb", (str(step.red), str(step.green), str(step.blue)))]
    if isinstance(step, GrayscaleStep):
        return [Filter("grayscale")]
    if isinstance(step, EqualizeStep):
        return [Filter("equalize")]
    if isinstance(step, RotateStep):
        return [Filter("rotate", (str(step.degrees),))]
    if isinstance(step, ScaleStep):
        return [Filter("proportion", (_number(step.factor),))]
    if isinstance(step, RedactStep | DrawDetectionsStep):
        return [_detection_filter(step)]
    if isinstance(step, MaxBytesStep):
        return [Filter("max_bytes", (str(step.bytes),))]
    if isinstance(step, BackgroundStep):
        return [Filter("background_color", (step.color.lstrip("#"),))]
    if isinstance(step, FillStep) and step.width is None and step.height is None:
        args = (
            (step.color.lstrip("#"), "true") if step.fill_transparent else (step.color.lstrip("#"),)
        )
        return [Filter("fill", args)]
    if isinstance(step, RoundCornerStep):
        r, g, b, _ = parse_colour(step.color)
        radius = f"{step.radius}|{step.radius_y}" if step.radius_y else str(step.radius)
        args = (radius, str(r), str(g), str(b), *(("true",) if step.transparent else ()))
        return [Filter("round_corner", args)]
    if isinstance(step, WatermarkStep):
        ratios = [_number(r) if r else "none" for r in (step.w_ratio, step.h_ratio)]
        tail = ratios if step.w_ratio or step.h_ratio else []
        return [Filter("watermark", (step.image, step.x, step.y, str(step.alpha), *tail))]
    if isinstance(step, ConvertStep):
        out = [Filter("format", (step.format,))]
        return out + ([Filter("quality", (str(step.quality),))] if step.quality else [])
    raise NoUrlForm(f"the URL grammar has no form for this {step.op} step", field="steps")


def _thumbnail_of(step: Step) -> tuple[ThumbnailStep, list[Filter]] | None:
    """A resizing step as the URL's geometry (ResizeStep's nearest thumbor form)."""
    if isinstance(step, ThumbnailStep):
        return step, []
    if not isinstance(step, ResizeStep):
        return None
    mode = {"fit": "fit_in", "exact": "stretch", "fill": "fill"}[step.mode]
    thumb = ThumbnailStep(
        width=step.width,
        height=step.height,
        mode=mode,
        smart=step.gravity == "smart",
    )
    extra: list[Filter] = []
    if step.upscale and mode == "fit_in":
        extra.append(Filter("upscale"))
    if not step.upscale and mode != "fit_in":
        extra.append(Filter("no_upscale"))
    if mode == "stretch":
        extra.append(Filter("stretch"))
    return thumb, extra


def url_for(spec: PipelineSpec, image: str) -> str:
    """The URL path (after the signature segment) that asks for `spec` on `image`: steps in
    thumbor's order (crop box, trim, one resize, flips) then filters. Raises NoUrlForm."""
    url = ThumborUrl(image=image)
    steps = list(spec.steps)
    filters: list[Filter] = []
    if steps and isinstance(steps[0], CropStep) and steps[0].aspect is None:
        crop = steps.pop(0)
        assert isinstance(crop, CropStep) and crop.width and crop.height
        url = replace(url, crop=(crop.x, crop.y, crop.x + crop.width, crop.y + crop.height))
    if steps and isinstance(steps[0], TrimStep):
        trim = steps.pop(0)
        assert isinstance(trim, TrimStep)
        url = replace(url, trim=(trim.reference, trim.tolerance))
    if steps and (found := _thumbnail_of(steps[0])) is not None:
        steps.pop(0)
        thumb, extra = found
        fit = {"fit_in": "fit-in", "full_fit_in": "full-fit-in"}.get(thumb.mode)
        if fit and thumb.adaptive:
            fit = f"adaptive-{fit}"
        url = replace(
            url,
            width=thumb.width,
            height=thumb.height,
            fit=fit,  # type: ignore[arg-type]
            halign=thumb.halign,
            valign=thumb.valign,
            smart=thumb.smart,
        )
        if thumb.mode == "stretch" and not any(f.name == "stretch" for f in extra):
            extra.append(Filter("stretch"))
        if thumb.upscale is True and not any(f.name == "upscale" for f in extra):
            extra.append(Filter("upscale"))
        if thumb.upscale is False and not any(f.name == "no_upscale" for f in extra):
            extra.append(Filter("no_upscale"))
        filters += extra
    if steps and isinstance(steps[0], FlipStep):
        flip = steps.pop(0)
        assert isinstance(flip, FlipStep)
        url = replace(url, flip_horizontal=flip.horizontal, flip_vertical=flip.vertical)
    for step in steps:
        filters += _filter_for(step)
    for region in spec.regions:
        box = f"{int(region.x1)}x{int(region.y1)}:{math.ceil(region.x2)}x{math.ceil(region.y2)}"
        filters.append(Filter("focal", (box,)))
    if spec.format:
        filters.append(Filter("format", (spec.format,)))
    if spec.quality:
        filters.append(Filter("quality", (str(spec.quality),)))
    if spec.frames == "first":
        filters.append(Filter("cover"))
    return compose(replace(url, filters=tuple(filters)))

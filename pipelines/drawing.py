"""Boxes and labels drawn on an image: the single endpoints' `annotate=true` and the
pipeline's `draw_detections` step."""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from pipelines.results import Box

_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # Debian: fonts-dejavu-core
_COLOURS = ["#ff3838", "#2c99a8", "#ffb21d", "#48f90a", "#cb38ff", "#0018ec", "#ff9d97"]


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(_FONT, size)
    except OSError:
        return ImageFont.load_default(size)


def draw_boxes(img: Image.Image, boxes: list[tuple[Box, str]]) -> Image.Image:
    out = img.convert("RGB")
    draw = ImageDraw.Draw(out)
    line = max(2, round(min(out.size) / 300))
    font = _font(max(12, round(min(out.size) / 40)))
    colour_of: dict[str, str] = {}
    for box, label in boxes:
        colour = colour_of.setdefault(label.split(" ")[0], _COLOURS[len(colour_of) % len(_COLOURS)])
        draw.rectangle((box.x1, box.y1, box.x2, box.y2), outline=colour, width=line)
        if label:
            left, top, right, bottom = draw.textbbox((box.x1, box.y1), label, font=font)
            lift = bottom - top + 2 * line
            y = box.y1 - lift if box.y1 >= lift else box.y1
            draw.rectangle((box.x1, y, box.x1 + right - left + 2 * line, y + lift), fill=colour)
            draw.text((box.x1 + line, y + line - (top - box.y1)), label, fill="white", font=font)
    return out

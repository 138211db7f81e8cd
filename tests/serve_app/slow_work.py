"""Functions the killable-pool tests send to a child (importable there: no Ray, no test deps)."""

from __future__ import annotations

import os
import time

from pipelines.errors import InvalidParameter


def pid() -> int:
    return os.getpid()


def spin(seconds: float) -> int:
    """Hold a core in one C call that no signal handler interrupts: Pillow's median filter,
    repeated until `seconds` have passed."""
    from PIL import Image, ImageFilter

    img = Image.effect_noise((400, 400), 60).convert("RGB")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        img.filter(ImageFilter.MedianFilter(9))
    return os.getpid()


def refuse() -> None:
    raise InvalidParameter("not this one", field="size")


def die() -> None:
    """The child ends mid-call, as one killed by the kernel's OOM killer would."""
    os._exit(1)

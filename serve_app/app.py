"""The app builder: `serve_app.app:app` is the import_path in serve_config.yaml."""

from __future__ import annotations

from ray.serve import Application

from deployments.face_detector import FaceDetector
from deployments.ocr_reader import OcrReader
from deployments.preprocessor import Preprocessor
from deployments.yolo_detector import YoloDetector
from serve_app.ingress import Ingress
from serve_app.services.task_runner import TaskRunner
from serve_app.settings import get_settings


def build() -> Application:
    settings = get_settings()
    models = settings.models
    # serve.deployment turns the classes into Deployments; their stubs do not say so.
    # The settings' limits are every deployment's base; user_config.limits overrides them live.
    limits = settings.limits.to_limits().model_dump()
    preprocessor = Preprocessor.bind(limits=limits)  # type: ignore[attr-defined]
    detector = YoloDetector.bind(  # type: ignore[attr-defined]
        weights=models.yolo_weights, limits=limits, registry=models.yolo_registry
    )
    ocr = OcrReader.bind(default_engine=models.ocr_engine, limits=limits)  # type: ignore[attr-defined]
    faces = FaceDetector.bind(default_engine=models.face_engine, limits=limits)  # type: ignore[attr-defined]
    # One graph: the runner shares the same model deployments as the ingress.
    runner = TaskRunner.bind(preprocessor, detector, ocr, faces)  # type: ignore[attr-defined]
    return Ingress.bind(preprocessor, detector, ocr, faces, runner)  # type: ignore[attr-defined]


app = build()

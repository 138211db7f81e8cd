"""The app builder: `serve_app.app:app` is the import_path in serve_config.yaml."""

from __future__ import annotations

from ray.serve import Application

from deployments.preprocessor import Preprocessor
from serve_app.ingress import Ingress
from serve_app.settings import get_settings


def build() -> Application:
    limits = get_settings().limits.to_limits().model_dump()
    # serve.deployment turns the classes into Deployments; their stubs do not say so.
    preprocessor = Preprocessor.bind(limits=limits)  # type: ignore[attr-defined]
    return Ingress.bind(preprocessor)  # type: ignore[attr-defined]


app = build()

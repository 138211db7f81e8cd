"""OpenTelemetry tracing, off unless TRACING_ENABLED: a span per request at the ingress and a
child span per call it makes to another deployment, exported over OTLP/HTTP (the standard
OTEL_EXPORTER_OTLP_ENDPOINT variable says where) or printed (TRACING_EXPORTER=console).

The request spans are opentelemetry-instrumentation-asgi's (`RequestSpans` puts its middleware
in front of the app while tracing is on), with the stable HTTP semantic conventions; the guard
renames each after its route template and adds the request id (`name_request_span`). When
tracing is off, requests pass straight through and `call_span()` hands back OpenTelemetry's
no-op span: no cost to speak of.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from starlette.types import ASGIApp, Receive, Scope, Send

from serve_app.errors import Unavailable
from serve_app.settings import TracingSettings

_provider: TracerProvider | None = None


def configure(settings: TracingSettings, exporter: SpanExporter | None = None) -> None:
    """Install a tracer provider for this process (an ingress replica). `exporter` overrides
    the configured one (tests pass an in-memory exporter)."""
    global _provider
    if not settings.enabled:
        _provider = None
        return
    # http.request.method, http.response.status_code, url.path... rather than the old names.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    provider = TracerProvider(resource=Resource.create({"service.name": "image-service"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif settings.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _provider = provider


def tracer() -> trace.Tracer:
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer("serve_app")


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    with tracer().start_as_current_span(name, attributes=attributes) as current:
        yield current


class RequestSpans:
    """ASGI middleware: a server span per HTTP request, made by opentelemetry-instrumentation-
    asgi while tracing is on (with this process's provider, however often it is configured);
    the app alone while it is off. Its metrics are not wanted: Ray exports ours."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._traced: ASGIApp | None = None
        self._traced_for: TracerProvider | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        provider = _provider
        if provider is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._traced is None or self._traced_for is not provider:
            self._traced = OpenTelemetryMiddleware(
                self.app,
                tracer=provider.get_tracer("serve_app"),
                meter=NoOpMeter("serve_app"),
                exclude_spans=["receive", "send"],
            )
            self._traced_for = provider
        await self._traced(scope, receive, send)


def name_request_span(method: str, route: str, request_id: str | None) -> None:
    """Name the current request span after its route template (never the raw path, which
    would give every id its own name) and add the request id."""
    current = trace.get_current_span()
    if not current.is_recording():
        return
    current.update_name(f"{method} {route}")
    current.set_attribute("http.route", route)
    if request_id:
        current.set_attribute("request.id", request_id)


@contextmanager
def call_span(deployment: str, method: str) -> Iterator[trace.Span]:
    """Around one call to another deployment: its span, and Serve's refusals in our terms.
    A full queue (BackPressureError) is 503 `overloaded`; Serve would otherwise answer it
    itself, in plain text, through a handler it installs on the FastAPI app."""
    attributes = {"serve.deployment": deployment, "rpc.method": method}
    with span(f"{deployment}.{method}", **attributes) as current:
        try:
            yield current
        except BackPressureError:
            raise Unavailable(
                f"the {deployment} is at capacity; try again shortly",
                code="overloaded",
                retry_after=1,
            ) from None
        except DeploymentUnavailableError:
            raise Unavailable(f"the {deployment} is unavailable; try again shortly") from None

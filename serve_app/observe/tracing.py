"""OpenTelemetry tracing, off unless TRACING_ENABLED: a span per request at the ingress and a
child span per call it makes to another deployment, exported over OTLP/HTTP (the standard
OTEL_EXPORTER_OTLP_ENDPOINT variable says where) or printed (TRACING_EXPORTER=console).

When tracing is off, `span()` hands back OpenTelemetry's no-op span: no cost to speak of.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

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

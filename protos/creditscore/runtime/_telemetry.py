"""OpenTelemetry tracing configured from the standard ``OTEL_*`` variables.

- ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``: the resource (read by the SDK).
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``: sampling (read by the SDK).
- ``OTEL_TRACES_EXPORTER``: ``otlp``, ``console`` or ``none``. Where it is unset, spans
  go to OTLP only if ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, and are otherwise not exported, so
  that a laptop without a collector does not log export failures.
- ``OTEL_EXPORTER_OTLP_*``: endpoint, headers, TLS (read by the OTLP exporter).
- ``OTEL_SDK_DISABLED=true``: no spans at all.

The provider is returned, never installed globally, so that several services can
run in one process (tests) each with its own resource; servers and channels take it
as a dependency.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

__all__ = ["configure_tracing"]


def _exporter_from_env(env: Mapping[str, str]) -> SpanExporter | None:
    choice = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not choice:
        has_endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        )
        choice = "otlp" if has_endpoint else "none"
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER={choice!r}: expected otlp, console or none")


def configure_tracing(
    service_name: str,
    environ: Mapping[str, str] | None = None,
    *,
    processor: SpanProcessor | None = None,
) -> TracerProvider | None:
    """A tracer provider for ``service_name``, or None when the SDK is disabled.

    ``processor`` (tests: a SimpleSpanProcessor over an in-memory exporter) replaces
    the exporter chosen from the environment.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    attributes = {SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    if processor is not None:
        provider.add_span_processor(processor)
    else:
        exporter = _exporter_from_env(env)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider

"""OpenTelemetry tracing and metrics configured from the standard ``OTEL_*`` variables.

- ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``: the resource (read by the SDK).
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``: sampling (read by the SDK).
- ``OTEL_TRACES_EXPORTER``: ``otlp``, ``console`` or ``none``. Where it is unset, spans
  go to OTLP only if ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, and are otherwise not exported, so
  that a laptop without a collector does not log export failures.
- ``OTEL_METRICS_EXPORTER``: ``otlp``, ``console`` or ``none``, defaulted the same way
  (``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is the metrics-only endpoint); with
  ``none`` there is no meter provider at all, so that recording costs nothing.
  ``OTEL_METRIC_EXPORT_INTERVAL`` (milliseconds, default 60000) is read by the SDK.
- ``OTEL_EXPORTER_OTLP_*``: endpoint, headers, TLS (read by the OTLP exporters).
- ``OTEL_SDK_DISABLED=true``: no spans and no metrics at all.

Each provider is returned, never installed globally, so that several services can
run in one process (tests) each with its own resource; servers and channels take it
as a dependency.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

__all__ = ["configure_metrics", "configure_tracing"]


def _exporter_choice(env: Mapping[str, str], signal: str) -> str:
    """``otlp``, ``console`` or ``none`` for ``signal`` (``traces``, ``metrics``):
    ``OTEL_<SIGNAL>_EXPORTER``, or ``otlp`` where an OTLP endpoint is set."""
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    choice = env.get(variable, "").strip().lower()
    if not choice:
        has_endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
            f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
        )
        choice = "otlp" if has_endpoint else "none"
    if choice not in ("otlp", "console", "none"):
        raise ValueError(f"{variable}={choice!r}: expected otlp, console or none")
    return choice


def _resource(env: Mapping[str, str], service_name: str) -> Resource:
    return Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service_name})


def _exporter_from_env(env: Mapping[str, str]) -> SpanExporter | None:
    choice = _exporter_choice(env, "traces")
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


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
    provider = TracerProvider(resource=_resource(env, service_name))
    if processor is not None:
        provider.add_span_processor(processor)
    else:
        exporter = _exporter_from_env(env)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_metrics(
    service_name: str,
    environ: Mapping[str, str] | None = None,
    *,
    reader: MetricReader | None = None,
) -> MeterProvider | None:
    """A meter provider for ``service_name`` exporting as ``OTEL_METRICS_EXPORTER``
    says, or None when the SDK is disabled or nothing would be exported.

    ``reader`` (tests: an ``InMemoryMetricReader``) replaces the exporter chosen
    from the environment.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if reader is None:
        choice = _exporter_choice(env, "metrics")
        if choice == "none":
            return None
        if choice == "console":
            # sys.stdout as it is now, not as it was when the SDK was imported.
            reader = PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stdout))
        else:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    return MeterProvider(resource=_resource(env, service_name), metric_readers=[reader])

"""Server metrics: calls, errors and latency per RPC; gauges read from async code.

``MetricsInterceptor`` records, for every call of a registered method, following the
OpenTelemetry RPC semantic conventions:

- ``rpc.server.call.duration`` (histogram, seconds), and
- ``creditscore.rpc.server.calls`` (counter, ``{call}``),

both with the attributes ``rpc.system.name`` (``grpc``), ``rpc.method``
(``package.Service/Method``) and ``rpc.response.status_code`` (``OK``,
``INVALID_ARGUMENT``, ...): errors are the calls whose status is not ``OK``.
Unknown methods are not recorded (their names come from the caller and would let
anyone grow the label set).

``AsyncGauge`` reports a value that only async code can read (a row count in the
database): the metric reader, collecting from its own thread, has it read on the
event loop at each collection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any, cast

import grpc
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

from ._handlers import Context, Continuation, Handler, streaming, unary, with_streaming, with_unary

__all__ = [
    "AsyncGauge",
    "CALLS_METRIC",
    "DURATION_METRIC",
    "DURATION_BUCKETS",
    "MetricsInterceptor",
]

log = logging.getLogger("creditscore.runtime")

DURATION_METRIC = "rpc.server.call.duration"
CALLS_METRIC = "creditscore.rpc.server.calls"
# The semantic conventions' advice for rpc.server.call.duration, with 1 and 2.5 ms
# added: a lookup's downstream calls take a few milliseconds here.
DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)

_OK = grpc.StatusCode.OK.name


def _status_name(context: Context, default: str) -> str:
    """The status the call ends with: what the servicer set (``set_code`` or
    ``abort``), else ``default``."""
    # None until a status is set (the stubs say a StatusCode).
    code: object = context.code()
    if code is None:
        return default
    return code.name if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN.name


def _cancelled_name(context: Context) -> str:
    """A call cancelled under the servicer: by its deadline or by the client."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED.name
    return grpc.StatusCode.CANCELLED.name


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every call; put it first in the chain so that the time
    and status include the other interceptors' work (tracing, error mapping)."""

    def __init__(self, meter_provider: MeterProvider, *, clock: Callable[[], float] = time.perf_counter) -> None:
        meter = meter_provider.get_meter("creditscore.runtime")
        self._duration = meter.create_histogram(
            DURATION_METRIC,
            unit="s",
            description="Duration of an incoming RPC, from its handler's start to its status.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self._calls = meter.create_counter(
            CALLS_METRIC, unit="{call}", description="Incoming RPCs by method and status code."
        )
        self._clock = clock
        self._attributes: dict[tuple[str, str], dict[str, str]] = {}

    def _record(self, method: str, status: str, started: float) -> None:
        key = (method, status)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = {
                "rpc.system.name": "grpc",
                "rpc.method": method.lstrip("/"),
                "rpc.response.status_code": status,
            }
            self._attributes[key] = attributes
        self._duration.record(self._clock() - started, attributes)
        self._calls.add(1, attributes)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        record = self._record
        clock = self._clock

        inner = unary(handler)
        if inner is not None:

            async def unary_response(request: Any, context: Context) -> Any:
                started = clock()
                status = grpc.StatusCode.UNKNOWN.name
                try:
                    response = await inner(request, context)
                    status = _status_name(context, _OK)
                    return response
                except asyncio.CancelledError:
                    status = _cancelled_name(context)
                    raise
                except BaseException:
                    status = _status_name(context, grpc.StatusCode.UNKNOWN.name)
                    raise
                finally:
                    record(method, status, started)

            return with_unary(handler, unary_response)

        inner_stream = streaming(handler)

        async def stream_response(request: Any, context: Context) -> AsyncIterator[Any]:
            started = clock()
            status = grpc.StatusCode.UNKNOWN.name
            try:
                async for item in cast("AsyncIterator[Any]", inner_stream(request, context)):
                    yield item
                status = _status_name(context, _OK)
            except asyncio.CancelledError:
                status = _cancelled_name(context)
                raise
            except GeneratorExit:
                # The response stream was closed under us: the client went away.
                status = grpc.StatusCode.CANCELLED.name
                raise
            except BaseException:
                status = _status_name(context, grpc.StatusCode.UNKNOWN.name)
                raise
            finally:
                record(method, status, started)

        return with_streaming(handler, stream_response)


class AsyncGauge:
    """An observable gauge whose value an async function reads, e.g.::

        gauge = AsyncGauge(meter, "creditscore.ingest.outbox.backlog", store.outbox_backlog,
                           unit="{record}", description="...")
        build.worker(gauge.start, gauge.stop)    # a ServiceBuilder's: with the server

    The metric reader collects from its own thread (every
    ``OTEL_METRIC_EXPORT_INTERVAL``); at each collection the gauge runs ``read`` on
    the event loop it was started on and waits up to ``timeout`` seconds for it, so
    the value exported is the value at export time, and nothing is read between
    exports. It reports nothing when the read fails or times out, before ``start``,
    after ``stop``, and when collected from the event loop's own thread (which it
    cannot block: collect from another thread, e.g. ``asyncio.to_thread``)."""

    def __init__(
        self,
        meter: Meter,
        name: str,
        read: Callable[[], Coroutine[Any, Any, float]],
        *,
        timeout: float = 5.0,
        unit: str = "",
        description: str = "",
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.name = name
        self._read = read
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        meter.create_observable_gauge(name, callbacks=[self._observe], unit=unit, description=description)

    async def start(self) -> None:
        """Binds the gauge to the running event loop: collections read from now on."""
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        """Collections report nothing from now on."""
        self._loop = None

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        loop = self._loop
        if loop is None or loop.is_closed():
            return []
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return []
        timeout = min(self._timeout, options.timeout_millis / 1000)
        try:
            future = asyncio.run_coroutine_threadsafe(self._read(), loop)
        except RuntimeError:  # the loop closed meanwhile
            return []
        try:
            value = future.result(timeout=timeout)
        except Exception:  # noqa: BLE001 - a metric never takes the service down
            future.cancel()
            log.warning("reading the gauge %s failed", self.name, exc_info=True)
            return []
        return [Observation(value)]

"""The Batcher: concurrent calls become batched calls, each caller keeps its own
result, error and deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from creditscore.runtime import Batcher, Deadline, DeadlineExceeded, Unavailable


class Downstream:
    """A fake batched RPC: records each batch, answers item * 10 after ``delay``."""

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay
        self.batches: list[list[int]] = []
        self.timeouts: list[float] = []
        self.fail: BaseException | None = None

    async def send(self, items: Sequence[int], timeout: float) -> list[int]:
        self.batches.append(list(items))
        self.timeouts.append(timeout)
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return [i * 10 for i in items]


async def test_one_call_alone_goes_out_at_once_in_a_batch_of_one() -> None:
    down = Downstream()
    batcher = Batcher(down.send, name="down")
    assert await batcher.call(3, Deadline(1.0)) == 30
    assert down.batches == [[3]]


async def test_calls_arriving_while_a_batch_is_in_flight_leave_together_in_order() -> None:
    down = Downstream()
    batcher = Batcher(down.send, name="down")
    results = await asyncio.gather(*(batcher.call(i, Deadline(1.0)) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    # The first leaves alone; the nine that queued behind it leave as one batch.
    assert down.batches == [[0], list(range(1, 10))]
    assert (batcher.batches_sent, batcher.items_sent) == (2, 10)


async def test_max_batch_and_max_in_flight_bound_the_batches() -> None:
    down = Downstream()
    batcher = Batcher(down.send, name="down", max_batch=4, max_in_flight=2)
    results = await asyncio.gather(*(batcher.call(i, Deadline(1.0)) for i in range(11)))
    assert results == [i * 10 for i in range(11)]
    assert all(len(b) <= 4 for b in down.batches)
    assert sorted(i for b in down.batches for i in b) == list(range(11))
    assert down.batches[:2] == [[0], [1]]  # two go out at once


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_goes_on() -> None:
    down = Downstream()
    batcher = Batcher(down.send, name="down")
    down.fail = Unavailable("down is unavailable", reason="DOWNSTREAM_UNAVAILABLE")
    outcomes = await asyncio.gather(
        *(batcher.call(i, Deadline(1.0)) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, Unavailable) for o in outcomes)
    down.fail = None
    assert await batcher.call(7, Deadline(1.0)) == 70


async def test_a_wrong_number_of_results_is_an_error_not_a_misattributed_answer() -> None:
    async def short(items: Sequence[int], timeout: float) -> list[int]:
        return [1]

    batcher = Batcher(short, name="down")
    outcomes = await asyncio.gather(
        *(batcher.call(i, Deadline(1.0)) for i in range(3)), return_exceptions=True
    )
    # The first batch (one item) is fine; the second (two items) got one result.
    assert outcomes[0] == 1
    assert all(isinstance(o, RuntimeError) for o in outcomes[1:])


async def test_a_short_deadline_fails_on_time_while_the_batch_goes_on_for_the_others() -> None:
    down = Downstream(delay=0.2)
    batcher = Batcher(down.send, name="down", reserve=0.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    short = asyncio.ensure_future(batcher.call(1, Deadline(0.05)))
    long = asyncio.ensure_future(batcher.call(2, Deadline(2.0)))
    with pytest.raises(DeadlineExceeded) as info:
        await short
    assert info.value.reason == "DOWNSTREAM_DEADLINE_EXCEEDED"
    assert loop.time() - start < 0.15
    assert await long == 20


async def test_the_batch_carries_the_latest_deadline_of_its_items() -> None:
    down = Downstream(delay=0.05)
    batcher = Batcher(down.send, name="down", reserve=0.0)
    await asyncio.gather(
        batcher.call(0, Deadline(1.0)), batcher.call(1, Deadline(0.5)), batcher.call(2, Deadline(3.0))
    )
    assert down.timeouts[0] == pytest.approx(1.0, abs=0.05)
    assert down.timeouts[1] == pytest.approx(3.0 - 0.05, abs=0.05)


async def test_items_whose_deadline_passed_while_queued_are_not_sent() -> None:
    down = Downstream(delay=0.1)
    batcher = Batcher(down.send, name="down", reserve=0.0)
    first = asyncio.ensure_future(batcher.call(0, Deadline(1.0)))
    await asyncio.sleep(0)
    doomed = asyncio.ensure_future(batcher.call(1, Deadline(0.02)))
    kept = asyncio.ensure_future(batcher.call(2, Deadline(1.0)))
    with pytest.raises(DeadlineExceeded):
        await doomed
    assert await first == 0 and await kept == 20
    assert down.batches == [[0], [2]]


async def test_a_cancelled_caller_is_left_out_of_a_batch_not_yet_sent() -> None:
    down = Downstream(delay=0.05)
    batcher = Batcher(down.send, name="down")
    first = asyncio.ensure_future(batcher.call(0, Deadline(1.0)))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(batcher.call(1, Deadline(1.0)))
    kept = asyncio.ensure_future(batcher.call(2, Deadline(1.0)))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first == 0 and await kept == 20
    assert down.batches == [[0], [2]]


async def test_no_time_left_fails_before_anything_is_queued() -> None:
    down = Downstream()
    batcher = Batcher(down.send, name="down")
    with pytest.raises(DeadlineExceeded):
        await batcher.call(1, Deadline(0.001))
    assert down.batches == []


async def test_the_batch_span_links_every_callers_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    down = Downstream()
    batcher = Batcher(down.send, name="down")

    async def lookup(i: int) -> int:
        with tracer.start_as_current_span(f"lookup {i}"):
            return await batcher.call(i, Deadline(1.0))

    # Use the test provider for the batch spans too.
    original = trace.get_tracer_provider()
    from creditscore.runtime import _batching

    _batching._tracer = provider.get_tracer("creditscore.runtime.batching")
    try:
        await asyncio.gather(*(lookup(i) for i in range(4)))
    finally:
        _batching._tracer = trace.get_tracer("creditscore.runtime.batching", tracer_provider=original)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    lookups = {spans[f"lookup {i}"].context.span_id for i in range(4)}
    batch_spans = [s for s in exporter.get_finished_spans() if s.name == "down batch"]
    assert len(batch_spans) == 2
    linked = {link.context.span_id for s in batch_spans for link in s.links}
    assert linked == lookups
    # Each batch span is a child of its first caller's span: one trace per lookup.
    parents = {s.parent.span_id for s in batch_spans if s.parent is not None}
    assert parents <= lookups and len(parents) == 2


async def test_batch_sizes_are_recorded_per_downstream() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from creditscore.runtime import BATCH_SIZE_METRIC

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    down = Downstream()
    batcher = Batcher(down.send, name="down", meter=meter)
    await asyncio.gather(*(batcher.call(i, Deadline(1.0)) for i in range(5)))
    points = [
        p
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics if m.name == BATCH_SIZE_METRIC
        for p in m.data.data_points
    ]
    (point,) = points
    assert dict(point.attributes) == {"creditscore.downstream": "down"}
    assert (point.count, point.sum, point.min, point.max) == (2, 5, 1, 4)  # [0], then [1..4]

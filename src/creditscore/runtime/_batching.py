"""Coalescing concurrent calls into batched downstream calls.

A gRPC hop costs about as much CPU as the useful work of a lookup (DESIGN §9), and
so does an async database statement. Under load, many lookups wait on the same
downstream at the same moment; a ``Batcher`` sends their questions as one batched
call (``GetFeatureVectors``, ``ScoreBatch``, ``RecordAccesses``) so that the hop and
the statements are paid once per batch, not once per lookup::

    vectors = Batcher(send_vectors, name="feature_service", max_batch=128)
    vector = await vectors.call(subject_id, deadline)

There is no timer and no added wait: an item goes out at once when fewer than
``max_in_flight`` batches are in flight; otherwise it waits for the next one to
leave, which happens the moment a batch in flight comes back, and takes everything
that queued meanwhile (up to ``max_batch``). At one call in flight every batch has
one item; the busier the service, the larger the batches.

Deadlines: each item keeps its own. A batch is sent with the latest deadline of
its items; an item whose deadline passes first gets ``DeadlineExceeded``
(``DOWNSTREAM_DEADLINE_EXCEEDED``) at its own deadline and the batch goes on for
the others. An item whose deadline has passed before its batch leaves is not
sent. A failed batch fails each of its items with the same error; a caller that
goes away (cancelled) is left out of any batch not yet sent.

Tracing: the batch's span is a child of the first item's span and links every
item's span, so each lookup's trace shows the batched call it waited on.

Metrics (with a ``meter``): ``creditscore.batch.size`` (histogram, ``{item}``), the
items of each batch sent, with the attribute ``creditscore.downstream`` (``name``):
whether concurrent calls really share downstream calls, and how much.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Meter

from ._channels import Deadline
from ._errors import DeadlineExceeded

__all__ = ["BATCH_SIZE_METRIC", "Batcher"]

#: The histogram of items per batch sent.
BATCH_SIZE_METRIC = "creditscore.batch.size"
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

T = TypeVar("T")
R = TypeVar("R")

_tracer = trace.get_tracer("creditscore.runtime.batching")


@dataclass(eq=False)
class _Pending(Generic[T, R]):
    item: T
    expires_at: float
    future: asyncio.Future[R]
    span_context: trace.SpanContext
    context: otel_context.Context = field(repr=False)


class Batcher(Generic[T, R]):
    """Sends concurrent ``call(item, deadline)`` as ``send(items, timeout)``.

    ``send`` must return one result per item, in order (or raise: then every item
    of the batch fails with that error). ``name`` names the downstream in errors
    and spans."""

    def __init__(
        self,
        send: Callable[[Sequence[T], float], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_batch: int = 128,
        max_in_flight: int = 1,
        reserve: float = 0.005,
        tracer: trace.Tracer | None = None,
        meter: Meter | None = None,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._send = send
        self._name = name
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._reserve = reserve
        self._tracer = tracer
        self._sizes = None if meter is None else meter.create_histogram(
            BATCH_SIZE_METRIC, unit="{item}", description="items per batched downstream call",
            explicit_bucket_boundaries_advisory=_SIZE_BUCKETS,
        )
        self._attributes = {"creditscore.downstream": name}
        self._queue: deque[_Pending[T, R]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        #: Batches sent and items in them, for tests and benchmarks.
        self.batches_sent = 0
        self.items_sent = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def queued(self) -> int:
        """Items waiting for a batch to leave (a caller gone or expired included,
        until the next batch leaves)."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Batches sent and not answered yet."""
        return self._in_flight

    async def call(self, item: T, deadline: Deadline) -> R:
        """The result of ``item``, sent in the next batch; ``DeadlineExceeded``
        when ``deadline`` passes first."""
        timeout = deadline.timeout(self._reserve)
        loop = asyncio.get_running_loop()
        pending: _Pending[T, R] = _Pending(
            item=item,
            expires_at=time.monotonic() + timeout,
            future=loop.create_future(),
            span_context=trace.get_current_span().get_span_context(),
            context=otel_context.get_current(),
        )
        self._queue.append(pending)
        self._pump()
        # A timer, not wait_for: no task per call (this runs for every lookup).
        timer = loop.call_at(loop.time() + timeout, self._expire, pending.future)
        try:
            return await pending.future  # cancelled with its caller: left out of a batch not yet sent
        finally:
            timer.cancel()

    def _expire(self, future: asyncio.Future[R]) -> None:
        if not future.done():
            future.set_exception(DeadlineExceeded(
                f"{self._name} did not answer in time",
                reason="DOWNSTREAM_DEADLINE_EXCEEDED",
                metadata={"service": self._name, "code": "DEADLINE_EXCEEDED"},
            ))

    def _pump(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            batch = self._take()
            if not batch:
                return
            self._in_flight += 1
            # The batch runs in the first item's context: its span is the parent.
            task = asyncio.get_running_loop().create_task(
                self._run(batch), context=_copy_context_with(batch[0].context)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Pending[T, R]]:
        now = time.monotonic()
        batch: list[_Pending[T, R]] = []
        while self._queue and len(batch) < self._max_batch:
            pending = self._queue.popleft()
            if pending.future.done():
                continue  # its caller went away
            if pending.expires_at - self._reserve <= now:
                pending.future.set_exception(DeadlineExceeded(
                    f"the deadline passed before {self._name} was asked",
                    reason="DOWNSTREAM_DEADLINE_EXCEEDED",
                    metadata={"service": self._name, "code": "DEADLINE_EXCEEDED"},
                ))
                pending.future.exception()  # retrieved: no "never retrieved" warning
                continue
            batch.append(pending)
        return batch

    async def _run(self, batch: list[_Pending[T, R]]) -> None:
        try:
            timeout = max(p.expires_at for p in batch) - time.monotonic()
            links = [trace.Link(p.span_context) for p in batch if p.span_context.is_valid]
            with (self._tracer or _tracer).start_as_current_span(
                f"{self._name} batch", links=links, attributes={"batch.size": len(batch)}
            ):
                self.batches_sent += 1
                self.items_sent += len(batch)
                if self._sizes is not None:
                    self._sizes.record(len(batch), self._attributes)
                try:
                    results = await self._send([p.item for p in batch], max(timeout, 0.001))
                    if len(results) != len(batch):
                        raise RuntimeError(
                            f"{self._name} answered {len(results)} results for {len(batch)} items"
                        )
                except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(exc)
                            p.future.exception()
                    if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                        raise
                    return
                for p, result in zip(batch, results, strict=True):
                    if not p.future.done():
                        p.future.set_result(result)
        finally:
            self._in_flight -= 1
            self._pump()


def _copy_context_with(ctx: otel_context.Context) -> Any:
    import contextvars

    token = otel_context.attach(ctx)
    try:
        return contextvars.copy_context()
    finally:
        otel_context.detach(token)

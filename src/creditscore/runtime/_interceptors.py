"""The server interceptor that maps domain errors to ``google.rpc.Status``,
refuses a request that does not parse as its message (INVALID_ARGUMENT,
``MALFORMED_REQUEST``) where grpc itself would answer UNKNOWN, and reads what is
left of a refused client stream before its status (``_drain``)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc
from google.protobuf.message import DecodeError

from ._errors import DomainError, InvalidArgument, to_status
from ._handlers import Context, Continuation, Handler, streaming, unary, with_streaming, with_unary

__all__ = ["ErrorInterceptor"]

log = logging.getLogger("creditscore.runtime")


class _Malformed:
    """What a request that did not parse is handed on as (grpc answers UNKNOWN,
    with a traceback in the log, when the deserializer itself raises)."""

    __slots__ = ()


_MALFORMED = _Malformed()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, RecursionError, ValueError):
            return _MALFORMED

    return parse


def _malformed() -> InvalidArgument:
    return InvalidArgument("the request is not a valid message of the method's type", reason="MALFORMED_REQUEST")


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream that raises ``MALFORMED_REQUEST`` at the first message that did not parse."""
    async for item in requests:
        if item is _MALFORMED:
            raise _malformed()
        yield item


#: How long, and how many messages, a refused client stream is read on for (see ``_drain``).
DRAIN_SECONDS = 2.0
DRAIN_MESSAGES = 1000


async def _drain(requests: AsyncIterator[Any]) -> None:
    """Reads what is left of a client stream before the call is answered with an
    error: a server that answers (aborts) while the client is still sending makes
    grpc's client see INTERNAL ("Internal error from Core") in place of the
    status, for any request stream of a few megabytes. Bounded: at most
    ``DRAIN_MESSAGES`` messages for ``DRAIN_SECONDS``; past that the status is sent
    anyway."""

    async def read() -> None:
        count = 0
        async for _ in requests:
            count += 1
            if count >= DRAIN_MESSAGES:
                return

    with contextlib.suppress(Exception):
        await asyncio.wait_for(read(), DRAIN_SECONDS)


def _check(request: Any, client_streaming: bool) -> Any:
    if client_streaming:
        return _checked(request)
    if request is _MALFORMED:
        raise _malformed()
    return request


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns a raised ``DomainError`` into a status with ``ErrorInfo`` (and
    ``BadRequest``) details; any other exception into INTERNAL without leaking
    its text. ``domain`` is the service's ErrorInfo domain, e.g.
    ``consent.creditscore``."""

    def __init__(self, domain: str) -> None:
        self.domain = domain

    async def _abort(self, context: Context, exc: BaseException, method: str) -> None:
        if isinstance(exc, DomainError):
            error = exc
        else:
            log.exception("unhandled error in %s", method)
            error = DomainError("internal error", reason="INTERNAL")
        status = to_status(error, self.domain)
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        abort = self._abort
        client_streaming = bool(handler.request_streaming)
        deserializer = _tolerant(handler.request_deserializer)

        inner = unary(handler)
        if inner is not None:

            async def unary_response(request: Any, context: Context) -> Any:
                try:
                    return await inner(_check(request, client_streaming), context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001 - mapped to a status
                    if client_streaming:
                        await _drain(request)
                    await abort(context, exc, method)

            return with_unary(handler, unary_response, request_deserializer=deserializer)

        inner_stream = streaming(handler)

        async def stream_response(request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                async for item in cast("AsyncIterator[Any]", inner_stream(_check(request, client_streaming), context)):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status
                await abort(context, exc, method)

        async def written_response(request: Any, context: Context) -> None:
            # A streaming handler may be a coroutine that answers through
            # ``context.write`` (the health service's Watch is one) rather than an
            # async generator: it is awaited, not iterated.
            try:
                await cast("Awaitable[None]", inner_stream(_check(request, client_streaming), context))
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status
                await abort(context, exc, method)

        return with_streaming(
            handler, stream_response if inspect.isasyncgenfunction(inner_stream) else written_response,
            request_deserializer=deserializer,
        )
